package proto_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// TestServiceContract pins the service and method names KEDA dials, and
// which RPCs stream.
func TestServiceContract(t *testing.T) {
	svc := pb.File_externalscaler_proto.Services().ByName("ExternalScaler")
	if svc == nil {
		t.Fatal("service ExternalScaler missing")
	}
	if got := string(svc.FullName()); got != "externalscaler.ExternalScaler" {
		t.Fatalf("service full name = %q, want externalscaler.ExternalScaler", got)
	}
	want := []struct {
		name, in, out string
		serverStream  bool
	}{
		{"IsActive", "ScaledObjectRef", "IsActiveResponse", false},
		{"StreamIsActive", "ScaledObjectRef", "IsActiveResponse", true},
		{"GetMetricSpec", "ScaledObjectRef", "GetMetricSpecResponse", false},
		{"GetMetrics", "GetMetricsRequest", "GetMetricsResponse", false},
		{"StreamMetricSpec", "ScaledObjectRef", "GetMetricSpecResponse", true},
	}
	if n := svc.Methods().Len(); n != len(want) {
		t.Errorf("service has %d methods, want %d", n, len(want))
	}
	for _, w := range want {
		m := svc.Methods().ByName(protoreflect.Name(w.name))
		if m == nil {
			t.Errorf("method %s missing", w.name)
			continue
		}
		if got := string(m.Input().FullName()); got != "externalscaler."+w.in {
			t.Errorf("%s input = %s, want externalscaler.%s", w.name, got, w.in)
		}
		if got := string(m.Output().FullName()); got != "externalscaler."+w.out {
			t.Errorf("%s output = %s, want externalscaler.%s", w.name, got, w.out)
		}
		if m.IsStreamingServer() != w.serverStream || m.IsStreamingClient() {
			t.Errorf("%s streaming: server=%v client=%v, want server=%v client=false",
				w.name, m.IsStreamingServer(), m.IsStreamingClient(), w.serverStream)
		}
	}
	// The gRPC full method names the generated client uses.
	for name, got := range map[string]string{
		"IsActive":         pb.ExternalScaler_IsActive_FullMethodName,
		"StreamIsActive":   pb.ExternalScaler_StreamIsActive_FullMethodName,
		"GetMetricSpec":    pb.ExternalScaler_GetMetricSpec_FullMethodName,
		"GetMetrics":       pb.ExternalScaler_GetMetrics_FullMethodName,
		"StreamMetricSpec": pb.ExternalScaler_StreamMetricSpec_FullMethodName,
	} {
		if want := "/externalscaler.ExternalScaler/" + name; got != want {
			t.Errorf("full method name = %q, want %q", got, want)
		}
	}
}

// TestMessageContract pins every message's fields: numbers, names, kinds
// and cardinality, as KEDA's wire format has them.
func TestMessageContract(t *testing.T) {
	type field struct {
		num      protoreflect.FieldNumber
		name     string
		kind     protoreflect.Kind
		repeated bool
		message  string // for message fields
	}
	want := map[string][]field{
		"ScaledObjectRef": {
			{1, "name", protoreflect.StringKind, false, ""},
			{2, "namespace", protoreflect.StringKind, false, ""},
			{3, "scalerMetadata", protoreflect.MessageKind, true, "externalscaler.ScaledObjectRef.ScalerMetadataEntry"},
		},
		"IsActiveResponse": {
			{1, "result", protoreflect.BoolKind, false, ""},
		},
		"GetMetricSpecResponse": {
			{1, "metricSpecs", protoreflect.MessageKind, true, "externalscaler.MetricSpec"},
		},
		"MetricSpec": {
			{1, "metricName", protoreflect.StringKind, false, ""},
			{2, "targetSize", protoreflect.Int64Kind, false, ""},
			{3, "targetSizeFloat", protoreflect.DoubleKind, false, ""},
		},
		"GetMetricsRequest": {
			{1, "scaledObjectRef", protoreflect.MessageKind, false, "externalscaler.ScaledObjectRef"},
			{2, "metricName", protoreflect.StringKind, false, ""},
		},
		"GetMetricsResponse": {
			{1, "metricValues", protoreflect.MessageKind, true, "externalscaler.MetricValue"},
		},
		"MetricValue": {
			{1, "metricName", protoreflect.StringKind, false, ""},
			{2, "metricValue", protoreflect.Int64Kind, false, ""},
			{3, "metricValueFloat", protoreflect.DoubleKind, false, ""},
		},
	}
	msgs := pb.File_externalscaler_proto.Messages()
	if msgs.Len() != len(want) {
		t.Errorf("file has %d messages, want %d", msgs.Len(), len(want))
	}
	if got := pb.File_externalscaler_proto.Package(); got != "externalscaler" {
		t.Errorf("package = %q, want externalscaler", got)
	}
	for name, fields := range want {
		md := msgs.ByName(protoreflect.Name(name))
		if md == nil {
			t.Errorf("message %s missing", name)
			continue
		}
		if md.Fields().Len() != len(fields) {
			t.Errorf("%s has %d fields, want %d", name, md.Fields().Len(), len(fields))
		}
		for _, f := range fields {
			fd := md.Fields().ByNumber(f.num)
			if fd == nil {
				t.Errorf("%s: field %d missing", name, f.num)
				continue
			}
			if string(fd.Name()) != f.name || fd.Kind() != f.kind || (fd.Cardinality() == protoreflect.Repeated) != f.repeated {
				t.Errorf("%s field %d = %s %v repeated=%v, want %s %v repeated=%v",
					name, f.num, fd.Name(), fd.Kind(), fd.Cardinality() == protoreflect.Repeated, f.name, f.kind, f.repeated)
			}
			if f.message != "" && string(fd.Message().FullName()) != f.message {
				t.Errorf("%s field %s type = %s, want %s", name, f.name, fd.Message().FullName(), f.message)
			}
		}
	}
	// scalerMetadata is map<string,string>.
	meta := msgs.ByName("ScaledObjectRef").Fields().ByName("scalerMetadata")
	if !meta.IsMap() || meta.MapKey().Kind() != protoreflect.StringKind || meta.MapValue().Kind() != protoreflect.StringKind {
		t.Errorf("scalerMetadata is not map<string,string>")
	}
}
