package postgresquery

import (
	"fmt"
	"testing"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// TestListenFairShare: namespace evil holds every LISTEN session
// (POSTGRES_MAX_LISTEN_CHANNELS); good's notifyChannel still gets one,
// taken from evil, and good's push comes within a second of its NOTIFY.
// The sessions stay at the bound.
func TestListenFairShare(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), func(c *Config) { c.MaxListenChannels = 2 }, scalertest.Options{PushInterval: 30 * time.Second})
	ref := func(ns, channel string, seats int) *pb.ScaledObjectRef {
		return &pb.ScaledObjectRef{Namespace: ns, Name: "so-" + channel, ScalerMetadata: map[string]string{
			"query":            fmt.Sprintf("select count(*) from bookings where seats = %d", seats),
			"targetQueryValue": "1", "notifyChannel": channel}}
	}
	for i := range 3 { // one more than the bound: it waits, polled
		ch, _ := e.streamIsActive(t, ref("evil", fmt.Sprintf("evil_%d", i), 200+i))
		if scalertest.Next(t, ch, 5*time.Second, "evil's first message") {
			t.Fatal("evil active with no booking")
		}
	}
	waitListenSessions(t, e.db, 2, 5*time.Second)

	good, _ := e.streamIsActive(t, ref("good", "good_channel", 300))
	if scalertest.Next(t, good, 5*time.Second, "good's first message") {
		t.Fatal("good active with no booking")
	}
	l := e.b.listeners[sqlmetric.DefaultConnection]
	wait.For(t, 5*time.Second, "good listening", func() bool { return l.mux.Held("good") == 1 && l.Channels() == 2 })
	waitListenSessions(t, e.db, 2, 5*time.Second)
	exec(t, e.db, "insert into bookings (status, seats) values ('waiting', 300); notify good_channel")
	if !scalertest.Next(t, good, time.Second, "good's push within 1s of its NOTIFY") {
		t.Fatal("good inactive after its booking came")
	}
	if got := l.mux.Held("evil"); got != 1 {
		t.Errorf("evil holds %d LISTEN places, want 1 (its share of 2)", got)
	}
}
