package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kedascalers/kedascalers/libs/testkit/proc"
)

const (
	postgresReadyTimeout  = 30 * time.Second
	postgresInitTimeout   = 2 * time.Minute
	postgresStopGrace     = 15 * time.Second
	postgresMaxConns      = 200
	postgresInstallHint   = `install it with "apt-get install -y postgresql"`
	postgresOSUser        = "postgres"
	postgresSuperuserName = "postgres"
)

// postgresBinGlob is where Debian and Ubuntu keep the server binaries of each
// installed major version; a variable so that tests can point it elsewhere.
var postgresBinGlob = "/usr/lib/postgresql/*/bin"

// Postgres is a throwaway PostgreSQL server listening on 127.0.0.1, with a
// superuser "postgres" that needs no password. It is safe for concurrent use.
type Postgres struct {
	srv     server
	bindir  string // holds initdb and postgres
	dataDir string // the cluster, created once by initdb
	sockDir string // the server's Unix socket

	// cred is the "postgres" OS user that initdb and postgres run as when
	// this program runs as root; nil otherwise.
	cred *syscall.Credential
}

// StartPostgres creates a new database cluster in a new temporary directory,
// starts a PostgreSQL server for it on a free port on 127.0.0.1, and waits
// until it answers a query. Durability is turned off (fsync=off and friends)
// and max_connections is 200. The caller must call Close.
func StartPostgres() (*Postgres, error) {
	bindir, err := findPostgresBinDir()
	if err != nil {
		return nil, err
	}
	pg := &Postgres{bindir: bindir}
	if os.Geteuid() == 0 {
		if pg.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	// Not t.TempDir: when running as root the directory must be reachable by
	// the postgres user, and os.MkdirTemp under os.TempDir (normally /tmp)
	// is, once it is chowned.
	dir, err := os.MkdirTemp(os.TempDir(), "testenv-pg-*")
	if err != nil {
		return nil, fmt.Errorf("testenv: create postgres directory: %w", err)
	}
	pg.dataDir = filepath.Join(dir, "data")
	pg.sockDir = filepath.Join(dir, "sock")
	pg.srv = server{
		name:         "postgres",
		dir:          dir,
		logPath:      filepath.Join(dir, "postgres.log"),
		readyTimeout: postgresReadyTimeout,
		pollEvery:    50 * time.Millisecond,
		grace:        postgresStopGrace,
		// SIGINT asks for a fast shutdown; SIGQUIT (immediate shutdown)
		// follows if it hangs. postgres is a direct child even when running
		// as root (see command), so the signals reach it.
		stopSignals: []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT},
		command:     pg.serverCommand,
		ping:        func() error { return postgresPing(pg.URL()) },
		hint:        pg.userHint,
	}
	if err := pg.setup(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return pg, nil
}

// setup prepares the directory, runs initdb and starts the server.
func (pg *Postgres) setup() error {
	if err := os.Mkdir(pg.sockDir, 0o700); err != nil {
		return fmt.Errorf("testenv: create postgres socket directory: %w", err)
	}
	if pg.cred != nil {
		for _, d := range []string{pg.srv.dir, pg.sockDir} {
			if err := os.Chown(d, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
				return fmt.Errorf("testenv: give %s to the %s user: %w", d, postgresOSUser, err)
			}
		}
	}
	if err := pg.initdb(); err != nil {
		return err
	}
	return pg.srv.launch()
}

// NewPostgres starts a PostgreSQL server like StartPostgres and closes it when
// the test and its subtests finish. It fails the test if the server cannot be
// started, for example when PostgreSQL is not installed.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	pg, err := StartPostgres()
	return closeAtEnd(t, pg, err, "postgres")
}

// Addr returns the server's address as "127.0.0.1:port".
func (pg *Postgres) Addr() string { return pg.srv.addr() }

// URL returns a connection URL for the "postgres" database as the "postgres"
// superuser, as "postgres://postgres@127.0.0.1:port/postgres?sslmode=disable".
func (pg *Postgres) URL() string {
	return "postgres://" + postgresSuperuserName + "@" + pg.Addr() + "/postgres?sslmode=disable"
}

// Stop shuts the server down (fast shutdown: open sessions are terminated)
// and waits for it to exit. The data is kept; Start brings the server back on
// the same port. Stopping a stopped server does nothing.
func (pg *Postgres) Stop() error { return pg.srv.stop() }

// Start starts a stopped server again on the same port and data directory
// and waits until it answers a query. Starting a running server does
// nothing; starting a closed one is an error.
func (pg *Postgres) Start() error { return pg.srv.start() }

// Close stops the server and removes its temporary directory, data
// included. It is safe to call more than once.
func (pg *Postgres) Close() error { return pg.srv.close() }

// command returns a command for one of the server binaries, run as the
// postgres OS user when this program runs as root.
//
// The user is switched by the kernel between fork and exec (SysProcAttr
// Credential) rather than with runuser: runuser stays in between as the
// parent, does not pass SIGINT on, and passes only SIGTERM on, which is
// postgres's "smart" shutdown that waits for every client to leave.
func (pg *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bindir, name), args...)
	cmd.Dir = pg.srv.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGQUIT,
		Credential: pg.cred,
	}
	return cmd
}

// initdb creates the cluster in pg.dataDir.
func (pg *Postgres) initdb() error {
	noSync, err := pg.initdbNoSyncFlag()
	if err != nil {
		return err
	}
	logPath := filepath.Join(pg.srv.dir, "initdb.log")
	logf, err := openLog(logPath)
	if err != nil {
		return fmt.Errorf("testenv: open initdb log: %w", err)
	}
	args := []string{
		"-D", pg.dataDir,
		"-U", postgresSuperuserName,
		"--auth=trust",
		"-E", "UTF8",
		// The C locale exists everywhere, whatever LANG says, and keeps the
		// server's messages in English.
		"--no-locale",
	}
	if noSync != "" {
		args = append(args, noSync)
	}
	cmd := pg.command("initdb", args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	p, err := proc.Start(cmd)
	logf.Close()
	if err != nil {
		return fmt.Errorf("testenv: run initdb: %w", err)
	}
	select {
	case <-p.Done():
	case <-time.After(postgresInitTimeout):
		_ = p.Stop(syscall.SIGKILL, time.Second)
		return fmt.Errorf("testenv: initdb did not finish within %v; initdb output:\n%s",
			postgresInitTimeout, logTail(logPath, 20))
	}
	if _, err := p.Exited(); err != nil {
		return fmt.Errorf("testenv: initdb %s: %v%s; initdb output:\n%s",
			strings.Join(args, " "), err, pg.userHint(), logTail(logPath, 20))
	}
	return nil
}

// initdbNoSyncFlag returns the spelling of initdb's "do not fsync" flag in
// the installed version, or "" if it has none.
func (pg *Postgres) initdbNoSyncFlag() (string, error) {
	out, err := exec.Command(filepath.Join(pg.bindir, "initdb"), "--help").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("testenv: %s --help: %v: %s", filepath.Join(pg.bindir, "initdb"), err, out)
	}
	for _, flag := range []string{"--no-sync", "--nosync"} {
		if strings.Contains(string(out), flag) {
			return flag, nil
		}
	}
	return "", nil
}

// serverCommand returns the command for one run of postgres on the
// current port.
func (pg *Postgres) serverCommand() *exec.Cmd {
	return pg.command("postgres",
		"-D", pg.dataDir,
		"-p", strconv.Itoa(pg.srv.port),
		"-k", pg.sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections="+strconv.Itoa(postgresMaxConns),
	)
}

// userHint explains a likely cause of failures when running as root.
func (pg *Postgres) userHint() string {
	if pg.cred == nil {
		return ""
	}
	return fmt.Sprintf(" (running as the %s OS user, which must be able to reach %s; set TMPDIR to a directory it can reach if it cannot)",
		postgresOSUser, pg.srv.dir)
}

// postgresPing connects to url and runs "select 1".
func postgresPing(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "select 1").Scan(&one)
}

// postgresCredential looks up the postgres OS user.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup(postgresOSUser)
	if err != nil {
		return nil, fmt.Errorf("testenv: running as root, and PostgreSQL refuses to run as root, but there is no %q OS user to run it as (%v): %s, which creates that user",
			postgresOSUser, err, postgresInstallHint)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("testenv: uid %q of the %s user: %w", u.Uid, postgresOSUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("testenv: gid %q of the %s user: %w", u.Gid, postgresOSUser, err)
	}
	// An empty, non-nil Groups drops root's supplementary groups.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// findPostgresBinDir returns a directory holding both initdb and postgres:
// the one pg_config reports, else the one on PATH, else the newest
// /usr/lib/postgresql/<version>/bin.
func findPostgresBinDir() (string, error) {
	var candidates []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
			candidates = append(candidates, strings.TrimSpace(string(out)))
		}
	}
	for _, name := range []string{"postgres", "initdb"} {
		if p, err := exec.LookPath(name); err == nil {
			candidates = append(candidates, filepath.Dir(p))
		}
	}
	versioned, _ := filepath.Glob(postgresBinGlob)
	sort.SliceStable(versioned, func(i, j int) bool {
		return pgDirVersion(versioned[i]) > pgDirVersion(versioned[j])
	})
	candidates = append(candidates, versioned...)
	for _, dir := range candidates {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("testenv: PostgreSQL server binaries (initdb, postgres) not found via pg_config --bindir, on PATH or in %s: %s",
		postgresBinGlob, postgresInstallHint)
}

// pgDirVersion returns the major version in a path like
// /usr/lib/postgresql/15/bin, or -1.
func pgDirVersion(bindir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(bindir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
