// Package sqlmetric is the SQL metric core shared by the SQL scalers: a
// trigger's query, its value rule, the query policy, named queries and
// named connections (NamedConnections). It
// imports no database driver: each service connects with its own driver and
// hands the core a Querier per connection, which runs one query under that
// database's read-only and timeout guard.
//
// The value of a query: if it returns exactly one row whose first column is
// a number (any integer, decimal or float type, or text that parses as a
// number), that number; otherwise the number of rows. NULL in that single
// row counts as 0, and no rows count as 0. So
//
//	select count(*) from bookings where status = 'confirmed'   -- the count
//	select sum(seats) from bookings                            -- the sum (NULL: 0)
//	select id from bookings where status = 'pending'           -- the number of rows
//	select 'none'                                              -- 1 (one row, not a number)
//
// A query that returns more than MAX_ROWS rows is an error, not a wrong
// count.
package sqlmetric
