// Package redissession is the backend of the redis-session scaler: it counts
// the user sessions an application keeps in Redis, so that KEDA runs one
// replica per sessionSize sessions.
//
// A trigger's metadata picks what to count (mode): the keys of a database
// (DBSIZE), the keys matching a pattern (a SCAN walk, never KEYS), or the
// size of one set, sorted set, hash or list, or an integer counter the
// application keeps. An optional activeKey lets the application switch
// activity itself, and an optional sessionSizeKey lets operators retune
// the target at runtime.
//
// The package holds only what is particular to Redis: Config (REDIS_*
// variables), the metadata parser, the probes that read Redis, and
// keyspace-notification watching. Serving, caching, push streams and
// shutdown are scalerkit's.
package redissession
