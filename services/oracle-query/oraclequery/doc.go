// Package oraclequery is the backend of the oracle-query scaler: it scales a
// workload on the result of a SQL query against Oracle Database, so that
// KEDA runs one replica per targetQueryValue of it.
//
// The SQL part (trigger metadata, the value rule, the query policy, named
// queries, MAX_ROWS, MAX_QUERY_BYTES, MAX_ROW_BYTES, QUERY_TIMEOUT as the
// client deadline) is sqlmetric's, shared with the other SQL scalers.
// This package holds only what is particular to Oracle:
//
//   - Config: the ORACLE_* variables, two go-ora connection pools per
//     connection (ORACLE_URL, or ORACLE_HOST and friends, and named
//     ORACLE_URL_<NAME> ones; value reads, and background target reads
//     apart), small and bounded, resolved once at load;
//   - the guard: every query runs as the second statement of a transaction
//     opened with SET TRANSACTION READ ONLY and rolled back afterwards,
//     under QUERY_TIMEOUT, sqlmetric's context deadline (Oracle has no statement
//     timeout; go-ora breaks the call when the context ends);
//   - Convert: the Go types go-ora returns (NUMBER as exact decimal text,
//     BINARY_FLOAT and BINARY_DOUBLE as float64) into metric values;
//   - mapError: ORA-NNNNN codes into gRPC status codes (a refused write is
//     PermissionDenied, a bad query InvalidArgument, a cancelled one
//     DeadlineExceeded, a lost listener Unavailable).
//
// Only single statements reach Oracle: sqlmetric requires a query to
// start with SELECT or WITH, go-ora sends one statement per call, and a
// PL/SQL block starts with DECLARE or BEGIN. READ ONLY does not cover a
// function declared PRAGMA AUTONOMOUS_TRANSACTION, which commits in a
// transaction of its own: the scaler's database user should hold nothing
// but CREATE SESSION and SELECT on what it reads.
package oraclequery
