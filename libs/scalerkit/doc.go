// Package scalerkit is the shared core of the kedascalers services.
package scalerkit
