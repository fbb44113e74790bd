module github.com/kedascalers/kedascalers/tools/scalerctl

go 1.26.0

require (
	github.com/kedascalers/kedascalers/libs/scalerkit v0.0.0-00010101000000-000000000000
	github.com/kedascalers/kedascalers/proto v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/kedascalers/kedascalers/libs/testkit v0.0.0-00010101000000-000000000000
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/kedascalers/kedascalers/proto => ../../proto

replace github.com/kedascalers/kedascalers/libs/scalerkit => ../../libs/scalerkit

replace github.com/kedascalers/kedascalers/libs/testkit => ../../libs/testkit
