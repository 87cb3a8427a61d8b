package service

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseCoordinators(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Coordinators
		ok   bool
	}{
		{"127.0.0.1:8091", Coordinators{Addrs: []string{"127.0.0.1:8091"}}, true},
		{"a:1,b:2", Coordinators{Addrs: []string{"a:1", "b:2"}}, true},
		{" a:1 , b:2 ,a:1", Coordinators{Addrs: []string{"a:1", "b:2"}}, true},
		{"[::1]:8091", Coordinators{Addrs: []string{"[::1]:8091"}}, true},
		{"dns:///gtx-tc-headless:8091", Coordinators{DNSName: "gtx-tc-headless", DNSPort: 8091}, true},
		{"", Coordinators{}, false},
		{"a:1,", Coordinators{}, false},
		{"nohost", Coordinators{}, false},
		{":8091", Coordinators{}, false},
		{"dns:///name", Coordinators{}, false},
		{"dns:///name:0", Coordinators{}, false},
		{"dns:///name:http", Coordinators{}, false},
		{"dns:///a:1,b:2", Coordinators{}, false},
	} {
		got, err := ParseCoordinators(tt.in)
		if tt.ok != (err == nil) || tt.ok && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCoordinators(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseCoordinators(%q): error %v does not match ErrInvalidConfig", tt.in, err)
		}
	}
}

func FuzzParseCoordinators(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8091", "a:1,b:2", "dns:///gtx-tc-headless:8091", "dns:///x", ",", "[::1]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCoordinators(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not match ErrInvalidConfig", err)
			}
			return
		}
		if (c.DNSName == "") == (len(c.Addrs) == 0) {
			t.Fatalf("%q parsed to %+v: want either addresses or a DNS name", s, c)
		}
		for _, a := range c.Addrs {
			if a == "" || strings.Contains(a, ",") {
				t.Fatalf("%q parsed to address %q", s, a)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig("inventory")
	good.DSN = "inventory.db"
	for _, tt := range []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"replica list", func(c *Config) { c.TC = "a:1,b:2" }, true},
		{"dns", func(c *Config) { c.TC = "dns:///tc:8091" }, true},
		{"bad tc", func(c *Config) { c.TC = "a:1,,b:2" }, false},
		{"no nats", func(c *Config) { c.NATSURL = "" }, false},
		{"stream with a dot", func(c *Config) { c.NATSStream = "A.B" }, false},
		{"subject wildcard", func(c *Config) { c.NATSSubject = "gtx.*" }, false},
		{"subject empty token", func(c *Config) { c.NATSSubject = "gtx..x" }, false},
		{"postgres url", func(c *Config) { c.Driver, c.DSN = Postgres, "postgres://app:secret@db:5432/inventory" }, true},
		{"postgres key=value", func(c *Config) { c.Driver, c.DSN = Postgres, "host=db dbname=inventory password=secret" }, true},
		{"postgres url as sqlite", func(c *Config) { c.DSN = "postgresql://app:secret@db/inventory" }, false},
		{"postgres key=value as mysql", func(c *Config) { c.Driver, c.DSN = MySQL, "host=db dbname=inventory password=secret" }, false},
		{"unknown driver", func(c *Config) { c.Driver = "oracle" }, false},
	} {
		c := good
		tt.change(&c)
		err := c.Validate()
		if tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: Validate() shows the password: %v", tt.name, err)
		}
	}
}

func TestRebind(t *testing.T) {
	for _, tt := range []struct {
		driver, in, want string
	}{
		{Postgres, "UPDATE t SET a = a - ?, b = ? WHERE k = ? AND a >= ?", "UPDATE t SET a = a - $1, b = $2 WHERE k = $3 AND a >= $4"},
		{Postgres, "SELECT COUNT(*) FROM t", "SELECT COUNT(*) FROM t"},
		{MySQL, "SELECT a FROM t WHERE k = ?", "SELECT a FROM t WHERE k = ?"},
		{SQLite, "SELECT a FROM t WHERE k = ?", "SELECT a FROM t WHERE k = ?"},
	} {
		b := &Base{Cfg: Config{Driver: tt.driver}}
		if got := b.Rebind(tt.in); got != tt.want {
			t.Errorf("%s: Rebind(%q) = %q, want %q", tt.driver, tt.in, got, tt.want)
		}
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := ReadToken(path); err != nil || tok != "s3cret" {
		t.Fatalf("ReadToken = %q, %v; want s3cret", tok, err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(empty); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("ReadToken of an empty file: %v, want ErrInvalidConfig", err)
	}
	if _, err := ReadToken(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("ReadToken of a missing file: no error")
	}
}

func TestFlagsToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, env string
		args      []string
		want      string
	}{
		{"none", "", nil, ""},
		{"env", "from-env", nil, "from-env"},
		{"file", "", []string{"-tc-token-file", file}, "from-file"},
		{"file wins", "from-env", []string{"-tc-token-file", file}, "from-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GTX_TC_TOKEN", tt.env)
			c := DefaultConfig("order")
			fs := flag.NewFlagSet("order", flag.ContinueOnError)
			token, _ := Flags(fs, &c)
			if err := fs.Parse(append(tt.args, "-tc", "a:1,b:2", "-nats", "nats://n:4222")); err != nil {
				t.Fatal(err)
			}
			if err := token(); err != nil {
				t.Fatal(err)
			}
			if c.TCToken != tt.want || c.TC != "a:1,b:2" || c.NATSURL != "nats://n:4222" {
				t.Fatalf("token %q, tc %q, nats %q; want token %q", c.TCToken, c.TC, c.NATSURL, tt.want)
			}
		})
	}
}

// The DSN comes from GTX_DB_DSN or the file -db-dsn-file names, never from
// the command line, where it would show in process listings.
func TestFlagsDSN(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(file, []byte("app:pw@tcp(db:3306)/from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, env string
		args      []string
		want      string
		parseErr  bool
		readErr   bool
	}{
		{"default", "", nil, DefaultConfig("order").DSN, false, false},
		{"env", "app:pw@tcp(db:3306)/from_env", nil, "app:pw@tcp(db:3306)/from_env", false, false},
		{"file", "", []string{"-db-dsn-file", file}, "app:pw@tcp(db:3306)/from_file", false, false},
		{"file wins", "app:pw@tcp(db:3306)/from_env", []string{"-db-dsn-file", file}, "app:pw@tcp(db:3306)/from_file", false, false},
		{"empty file", "", []string{"-db-dsn-file", empty}, "", false, true},
		{"on the command line", "", []string{"-db-dsn", "app:pw@tcp(db:3306)/x"}, "", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("GTX_DB_DSN", tt.env)
			}
			c := DefaultConfig("order")
			fs := flag.NewFlagSet("order", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			read, _ := Flags(fs, &c)
			err := fs.Parse(tt.args)
			if tt.parseErr {
				// The flag package formats the refusal with %v.
				if err == nil || !strings.Contains(err.Error(), errDSNFlag.Error()) {
					t.Fatalf("parse %v: %v, want the -db-dsn refusal", tt.args, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = read()
			if tt.readErr {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("read: %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil || c.DSN != tt.want {
				t.Fatalf("DSN %q, %v; want %q", c.DSN, err, tt.want)
			}
		})
	}
}
