// Package pgquery is the backend of the postgres-query scaler: it scales a
// workload on the result of a SQL query that a ScaledObject's trigger
// gives (query) or names (queryName), for example
//
//	select count(*) from bookings where status = 'confirmed'
//
// The trigger keys, the value rule (one numeric row is its number, NULL
// and no rows are 0, anything else is the row count), named queries and
// the query policy are sqlmetric's, shared with the other SQL scalers.
// This package holds what is particular to PostgreSQL: Config (the
// POSTGRES_* variables and named connections), a Querier that runs each
// query read-only, rolled back, under a statement timeout and over the
// extended protocol, the conversion of pgx's values, and LISTEN/NOTIFY
// (the notifyChannel key) for push streams. Serving, caching, push
// streams and shutdown are scalerkit's.
package pgquery
