package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// What every image promises (Dockerfile, at the repository root).
const (
	builderImage = "golang:1.26"
	runtimeImage = "gcr.io/distroless/static-debian12:nonroot"
	imageUser    = "65532:65532"
	testVersion  = "v0.0.0-imagetest"
)

// dockerfile is the one Dockerfile of every service (--build-arg SERVICE).
var dockerfile = filepath.Join(repoRoot, "Dockerfile")

// TestImagesStaticBinaries replays the Dockerfile for each service without
// Docker: the build stage's ARG, COPY, WORKDIR, ENV and RUN instructions
// run in a scratch directory filled from the same build context (the
// repository root, less what .dockerignore leaves out), with the build
// arguments SERVICE and VERSION, so a COPY that misses a needed file, a
// go.sum that is not complete, or a build that needs cgo fails here as it
// would in the image build. The binary must be static (no interpreter, no
// dynamic section, no shared libraries: the runtime image has no libc) and
// report the version passed as the VERSION build argument. The final stage
// is checked for what the manifests rely on.
func TestImagesStaticBinaries(t *testing.T) {
	ignore := dockerignore(t)
	stages := parseDockerfile(t, dockerfile)
	if len(stages) != 2 {
		t.Fatalf("%d stages: want a build stage and a runtime stage", len(stages))
	}
	for _, svc := range services(t) {
		t.Run(svc, func(t *testing.T) {
			out := checkRuntimeStage(t, svc, stages[1])
			bin := replayBuildStage(t, repoRoot, ignore, stages[0], out, map[string]string{"SERVICE": svc, "VERSION": testVersion})
			checkStatic(t, bin)
			checkVersion(t, bin, svc)
		})
	}
}

// TestImageNeedsService: without --build-arg SERVICE the build stops at
// once with a message saying so, not at a COPY of services//go.mod.
func TestImageNeedsService(t *testing.T) {
	stages := parseDockerfile(t, dockerfile)
	for _, in := range stages[0] {
		if in.cmd == "RUN" && strings.Contains(in.args, "SERVICE") {
			guard := exec.Command("sh", "-c", in.args)
			guard.Env = []string{} // SERVICE unset
			err := guard.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("RUN %s with SERVICE unset: %v: want a failure", in.args, err)
			}
			return
		}
	}
	t.Fatal("the build stage does not check that SERVICE is set")
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, COPY, RUN...
	args string
}

// parseDockerfile splits a Dockerfile into stages of instructions. It
// knows comments, parser directives and line continuations: enough for
// the Dockerfiles of this repository.
func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && line == "") {
			continue
		}
		if rest, ok := strings.CutSuffix(trimmed, `\`); ok {
			line += rest + " "
			continue
		}
		line += trimmed
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before FROM", path, in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

// checkRuntimeStage checks the final stage and returns the path of the
// binary it copies from the build stage.
func checkRuntimeStage(t *testing.T, svc string, stage []instruction) (binary string) {
	t.Helper()
	seen := map[string]string{}
	var installed string // where the runtime stage puts the binary
	for _, in := range stage {
		switch in.cmd {
		case "FROM":
			if in.args != runtimeImage {
				t.Errorf("runtime FROM %q: want %s (no shell, no libc, nonroot)", in.args, runtimeImage)
			}
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) != 3 || f[0] != "--from=build" || !filepath.IsAbs(f[2]) {
				t.Errorf("runtime COPY %q: want --from=build <binary> /<path>", in.args)
			} else {
				binary, installed = f[1], f[2]
			}
		case "LABEL":
			if want := `org.opencontainers.image.title="${SERVICE}"`; !strings.Contains(in.args, want) {
				t.Errorf("LABEL %s: want %s", in.args, want)
			}
		case "RUN":
			t.Errorf("runtime RUN %q: the runtime image has no shell", in.args)
		}
		if in.cmd == "ARG" {
			name, _, _ := strings.Cut(in.args, "=")
			seen["ARG "+name] = in.args
		}
		seen[in.cmd] = in.args
	}
	if seen["USER"] != imageUser {
		t.Errorf("USER %q: want %s (the manifests' runAsUser)", seen["USER"], imageUser)
	}
	for _, p := range []string{"9090", "8080"} {
		if !strings.Contains(" "+seen["EXPOSE"]+" ", " "+p+" ") {
			t.Errorf("EXPOSE %q: want %s", seen["EXPOSE"], p)
		}
	}
	if want := `["` + installed + `"]`; seen["ENTRYPOINT"] != want {
		t.Errorf("ENTRYPOINT %s: want %s, the binary the stage copies", seen["ENTRYPOINT"], want)
	}
	if _, ok := seen["ARG SERVICE"]; !ok {
		t.Errorf("the runtime stage declares no ARG SERVICE: its labels would not name the service %s", svc)
	}
	if binary == "" {
		t.Fatalf("the runtime stage copies no binary from the build stage")
	}
	return binary
}

// ldflags finds -ldflags "..." in a RUN line.
var ldflags = regexp.MustCompile(`-ldflags\s+"([^"]*)"`)

// replayBuildStage runs the build stage's instructions in a scratch
// directory standing for the builder's filesystem, with buildContext as
// the build context, and returns the binary it built at out.
func replayBuildStage(t *testing.T, buildContext string, ignore *patternmatcher.PatternMatcher, stage []instruction, out string, buildArgs map[string]string) string {
	t.Helper()
	root := t.TempDir()
	workdir := "/"
	args := map[string]string{}
	declared := map[string]bool{}
	// expand substitutes ${ARG} and $ARG as Docker does in COPY and WORKDIR.
	expand := func(s string) string { return os.Expand(s, func(k string) string { return args[k] }) }
	env := map[string]string{
		// What the builder image sets, and the platform it targets.
		"GOTOOLCHAIN": "local", "GOOS": "linux", "GOARCH": runtime.GOARCH,
	}
	built := false
	for _, in := range stage {
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.args)
			if len(f) < 3 || f[len(f)-3] != builderImage || f[len(f)-2] != "AS" || f[len(f)-1] != "build" {
				t.Errorf("build FROM %q: want %s AS build", in.args, builderImage)
			}
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			declared[name] = true
			if v, ok := buildArgs[name]; ok {
				args[name] = v
			} else {
				args[name] = def // TARGETOS and friends: env above
			}
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("ENV %q: want KEY=value pairs", in.args)
				}
				env[k] = v
			}
		case "WORKDIR":
			workdir = resolve(workdir, expand(in.args))
		case "COPY":
			f := strings.Fields(expand(in.args))
			if len(f) < 2 || strings.HasPrefix(f[0], "--") {
				t.Fatalf("build COPY %q: want sources and a destination, no flags", in.args)
			}
			dst := resolve(workdir, f[len(f)-1])
			if strings.HasSuffix(f[len(f)-1], "/") || f[len(f)-1] == "." || f[len(f)-1] == "./" || len(f) > 2 {
				dst += "/"
			}
			for _, src := range f[:len(f)-1] {
				copyFromContext(t, buildContext, ignore, src, filepath.Join(root, dst), strings.HasSuffix(dst, "/"))
			}
		case "RUN":
			cmd := in.args
			for strings.HasPrefix(cmd, "--mount=") {
				_, cmd, _ = strings.Cut(cmd, " ")
			}
			dir := filepath.Join(root, workdir)
			switch {
			case strings.HasPrefix(cmd, "test "):
				// A guard of the build arguments: run as the builder's
				// shell would, with the arguments in its environment.
				guard := exec.Command("sh", "-c", cmd)
				for k, v := range args {
					guard.Env = append(guard.Env, k+"="+v)
				}
				if out, err := guard.CombinedOutput(); err != nil {
					t.Fatalf("RUN %s: %v\n%s", cmd, err, out)
				}
			case cmd == "go mod download":
				run(t, dir, env, "go", "mod", "download")
			case strings.Contains(cmd, "go build"):
				if !strings.Contains(cmd, "-trimpath") {
					t.Errorf("go build without -trimpath: %s", cmd)
				}
				m := ldflags.FindStringSubmatch(cmd)
				if m == nil || !strings.Contains(m[1], "-X github.com/kedascalers/kedascalers/libs/scalerkit.Version=${VERSION}") {
					t.Fatalf("go build %q: want -ldflags \"... -X github.com/kedascalers/kedascalers/libs/scalerkit.Version=${VERSION}\"", cmd)
				}
				if !strings.Contains(cmd, "-o "+out+" ") {
					t.Fatalf("go build %q: want -o %s (what the runtime stage copies)", cmd, out)
				}
				if env["CGO_ENABLED"] != "0" {
					t.Errorf("CGO_ENABLED=%q in the build stage: want ENV CGO_ENABLED=0", env["CGO_ENABLED"])
				}
				flags := os.Expand(m[1], func(k string) string { return args[k] })
				run(t, dir, env, "go", "build", "-trimpath", "-ldflags", flags, "-o", filepath.Join(root, out), ".")
				built = true
			default:
				t.Fatalf("build RUN %q: this test does not know how to replay it", cmd)
			}
		default:
			t.Fatalf("build %s %q: this test does not know how to replay it", in.cmd, in.args)
		}
	}
	if !built {
		t.Fatalf("the build stage runs no go build")
	}
	for name := range buildArgs {
		if !declared[name] {
			t.Errorf("the build stage declares no ARG %s", name)
		}
	}
	if env["GOWORK"] != "off" {
		t.Errorf("GOWORK=%q in the build stage: want off (the service's go.mod builds it alone)", env["GOWORK"])
	}
	return filepath.Join(root, out)
}

// resolve returns path (absolute, or relative to workdir) as an absolute
// path of the builder's filesystem.
func resolve(workdir, path string) string {
	if !filepath.IsAbs(path) {
		path = filepath.Join(workdir, path)
	}
	return filepath.Clean(path)
}

// copyFromContext copies src (relative to buildContext) to dst as a
// Dockerfile COPY does: a directory's contents into dst, a file into dst
// (a directory when intoDir). Files .dockerignore leaves out are not in
// the context.
func copyFromContext(t *testing.T, buildContext string, ignore *patternmatcher.PatternMatcher, src, dst string, intoDir bool) {
	t.Helper()
	base := filepath.Join(buildContext, src)
	info, err := os.Stat(base)
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
	excluded := func(path string) bool {
		rel, err := filepath.Rel(buildContext, path)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := ignore.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !info.IsDir() {
		if excluded(base) {
			t.Fatalf("COPY %s: .dockerignore leaves it out of the context", src)
		}
		if intoDir {
			dst = filepath.Join(dst, filepath.Base(base))
		}
		copyFile(t, base, dst)
		return
	}
	err = filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || excluded(path) {
			return err
		}
		rel, _ := filepath.Rel(base, path)
		copyFile(t, path, filepath.Join(dst, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	writeFile(t, dst, mustRead(t, src))
}

// dockerignore reads the repository's .dockerignore as Docker does.
func dockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// run runs a command in dir with the host's environment, less the Go
// settings a builder image would not have, plus env.
func run(t *testing.T, dir string, env map[string]string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOWORK", "GOFLAGS", "CGO_ENABLED", "GOOS", "GOARCH", "GOTOOLCHAIN":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
}

// checkStatic fails unless bin is a statically linked ELF executable.
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		t.Errorf("ELF type %v: want a plain executable (ET_EXEC)", f.Type)
	}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			t.Errorf("a PT_INTERP program header: the binary needs a dynamic loader")
		case elf.PT_DYNAMIC:
			t.Errorf("a PT_DYNAMIC program header: the binary is dynamically linked")
		}
	}
	if s := f.SectionByType(elf.SHT_DYNAMIC); s != nil {
		t.Errorf("a dynamic section %s", s.Name)
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
		t.Errorf("imported libraries %v (%v): want none", libs, err)
	}
}

// checkVersion runs bin --version where it can run (a linux host).
func checkVersion(t *testing.T, bin, svc string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Logf("not on linux: %s --version not run", svc)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", svc, err)
	}
	if want := fmt.Sprintf("%s %s\n", svc, testVersion); !bytes.Equal(out, []byte(want)) {
		t.Errorf("%s --version printed %q: want %q (is the -X path of the version right?)", svc, out, want)
	}
}
