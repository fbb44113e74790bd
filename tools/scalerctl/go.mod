module github.com/kedascalers/kedascalers/tools/scalerctl

go 1.25.0
