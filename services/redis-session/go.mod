module github.com/kedascalers/kedascalers/services/redis-session

go 1.25.0
