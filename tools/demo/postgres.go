package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kedascalers/kedascalers/libs/scalerkit/stream"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
)

// postgresQuery demonstrates postgres-query: scaling on a SQL query's
// result, guarded, with NOTIFY for instant activation.
func (d *demo) postgresQuery(ctx context.Context) (err error) {
	d.step("postgres-query: starting a throwaway PostgreSQL with a bookings table")
	pg, err := testenv.StartPostgres()
	if err != nil {
		return err
	}
	defer pg.Close()
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `
		create table bookings (id serial primary key, status text not null, seats int);
		insert into bookings (status, seats)
		select case when i % 3 = 0 then 'pending' else 'confirmed' end, 1 + i % 4
		from generate_series(1, 45) as i`); err != nil {
		return err
	}
	fmt.Fprintln(d.out, "bookings: 30 confirmed, 15 pending")

	// A 30 s push interval: an immediate true can only come from NOTIFY.
	// The throwaway server has only its superuser, postgres: allowed here
	// on purpose (production gives the scaler a SELECT-only role).
	svc, err := d.startService(ctx, "postgres-query", "POSTGRES_URL="+pg.URL(), "POSTGRES_ALLOW_SUPERUSER=true", "PUSH_INTERVAL=30s")
	if err != nil {
		return err
	}
	defer func() {
		d.step("stopping postgres-query with SIGTERM")
		if stopErr := svc.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		if err == nil {
			fmt.Fprintln(d.out, "postgres-query stopped cleanly")
		}
	}()

	count := "query=select count(*) from bookings where status = 'confirmed',targetQueryValue=10"
	d.step("one KEDA poll on a count query, 2 replicas running: 30 confirmed / 10 per replica")
	if err := d.scalerctl(ctx, outcome{0, "value 30, decision 3 replicas", []string{`value\s+30\b`, `decision\s+3 replicas`}},
		"check", "--addr", svc.addr, "--metadata", count, "--current-replicas", "2"); err != nil {
		return err
	}
	d.step("a multi-row query counts its rows; a fractional target round-trips")
	if err := d.scalerctl(ctx, outcome{0, "value 15, target 2.5, decision 6 replicas", []string{`value\s+15\b`, `target\s+2\.5\b`, `decision\s+6 replicas`}}, "check", "--addr", svc.addr, "--metadata",
		"query=select id from bookings where status = 'pending',targetQueryValue=2.5", "--current-replicas", "6"); err != nil {
		return err
	}

	d.step("the query runs read-only: a write is refused and the table is untouched")
	if err := d.scalerctl(ctx, outcome{1, "GetMetrics refused with PermissionDenied: read-only", []string{`GetMetrics: code = PermissionDenied .*read-only`}}, "check", "--addr", svc.addr, "--metadata",
		"query=with d as (delete from bookings returning 1) select count(*) from d,targetQueryValue=1"); err != nil {
		return err
	}
	var n int
	if err := conn.QueryRow(ctx, "select count(*) from bookings").Scan(&n); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "bookings still holds %d rows\n", n)
	if n != 45 {
		return fmt.Errorf("bookings holds %d rows after the refused delete, want 45", n)
	}

	d.step("external-push with notifyChannel: NOTIFY wakes a scaled-to-zero workload at once (PUSH_INTERVAL is 30s here)")
	fmt.Fprintln(d.out, "at +2s a refund request arrives and the application runs NOTIFY refunds")
	if _, err := conn.Exec(ctx, `create table refunds (id serial primary key, done bool not null default false)`); err != nil {
		return err
	}
	go func() {
		if stream.Sleep(ctx, 2*time.Second) {
			conn.Exec(ctx, `insert into refunds default values; notify refunds`)
		}
	}()
	return d.scalerctl(ctx, outcome{0, "false, then true right after the NOTIFY", []string{`StreamIsActive result=false(.|\n)*StreamIsActive result=true`}}, "watch", "--addr", svc.addr, "--metadata",
		"query=select count(*) from refunds where not done,targetQueryValue=5,notifyChannel=refunds", "--duration", "4s")
}
