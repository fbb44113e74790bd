module github.com/kedascalers/kedascalers/services/oracle-query

go 1.26.0

require (
	github.com/jackc/pgx/v5 v5.12.0
	github.com/kedascalers/kedascalers/libs/scalerkit v0.0.0-00010101000000-000000000000
	github.com/sijms/go-ora/v2 v2.8.24
	go.uber.org/goleak v1.3.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/grpc-ecosystem/go-grpc-middleware/v2 v2.3.4 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/kedascalers/kedascalers/libs/testkit v0.0.0-00010101000000-000000000000
	github.com/kedascalers/kedascalers/proto v0.0.0-00010101000000-000000000000
	github.com/kelseyhightower/envconfig v1.4.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_golang v1.25.0
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)

replace (
	github.com/kedascalers/kedascalers/libs/scalerkit => ../../libs/scalerkit
	github.com/kedascalers/kedascalers/proto => ../../proto
)

replace github.com/kedascalers/kedascalers/libs/testkit => ../../libs/testkit
