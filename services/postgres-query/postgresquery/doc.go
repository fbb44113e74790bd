// Package postgresquery is the backend of the postgres-query scaler: it scales a
// workload on the result of a SQL query against PostgreSQL, so that KEDA
// runs one replica per targetQueryValue of it, for example
//
//	select count(*) from bookings where status = 'confirmed'
//
// The SQL part (trigger metadata, the value rule, the query policy, named
// queries, MAX_ROWS, MAX_QUERY_BYTES, MAX_ROW_BYTES, QUERY_TIMEOUT as the
// client deadline) is sqlmetric's, shared with the other SQL scalers.
// This package holds only what is particular to PostgreSQL:
//
//   - Config: the POSTGRES_* variables, two pgx pools per connection
//     (POSTGRES_URL and named POSTGRES_URL_<NAME> ones; value reads, and
//     background target reads apart), resolved once at load;
//   - the guard (Querier): every query runs read-only, rolled back, under
//     a statement timeout, as one statement over the extended protocol,
//     as the unnamed statement with nothing cached, and with every
//     message the server sends bounded by MAX_ROW_BYTES while it is read;
//   - the role check: a superuser or BYPASSRLS role is refused, at start
//     and on every new connection, unless POSTGRES_ALLOW_SUPERUSER;
//   - Convert: the Go types pgx returns (integers, floats, numeric) into
//     metric values;
//   - mapError: SQLSTATEs into gRPC status codes (a refused write is
//     PermissionDenied, a bad query InvalidArgument, a missing role or
//     database FailedPrecondition, an outage Unavailable);
//   - Listener: LISTEN/NOTIFY (the notifyChannel key) for push streams.
//
// Serving, caching, push streams and shutdown are scalerkit's.
package postgresquery
