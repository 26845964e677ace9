package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/server"
)

// TestServeFlagsRequestIDsMax: --request-ids-max defaults to the engine's
// default, takes its environment variable when the flag is absent, and is
// refused outside its bounds with a usage error (exit code 2).
func TestServeFlagsRequestIDsMax(t *testing.T) {
	f, _, err := parseServeFlags(nil, io.Discard)
	if err != nil || f.requestIDsMax != engine.RequestIDsMaxDefault {
		t.Fatalf("default: %d, %v", f.requestIDsMax, err)
	}
	t.Setenv("FLASHSALE_REQUEST_IDS_MAX", "5000000")
	if f, _, err = parseServeFlags(nil, io.Discard); err != nil || f.requestIDsMax != 5_000_000 {
		t.Fatalf("from the environment: %d, %v", f.requestIDsMax, err)
	}
	if f, _, err = parseServeFlags([]string{"--request-ids-max", "7"}, io.Discard); err != nil || f.requestIDsMax != 7 {
		t.Fatalf("the flag wins over the environment: %d, %v", f.requestIDsMax, err)
	}
	for _, bad := range []string{"0", "-1", "2000000000"} {
		_, _, err := parseServeFlags([]string{"--request-ids-max", bad}, io.Discard)
		var ue *exitError
		if err == nil || !errors.As(err, &ue) || ue.code != 2 {
			t.Fatalf("--request-ids-max %s: %v, want a usage error", bad, err)
		}
	}
}

// TestServeFlagsHotSKUsDuplicate: a SKU named twice in --hot-skus (or its
// environment variable) is a usage error, not a panic at start-up.
func TestServeFlagsHotSKUsDuplicate(t *testing.T) {
	if _, _, err := parseServeFlags([]string{"--hot-skus", "a, b"}, io.Discard); err != nil {
		t.Fatalf("distinct ids: %v", err)
	}
	for _, args := range [][]string{{"--hot-skus", "a,a"}, {"--hot-skus", "a, b ,a"}} {
		_, _, err := parseServeFlags(args, io.Discard)
		var ue *exitError
		if err == nil || !errors.As(err, &ue) || ue.code != 2 {
			t.Fatalf("%q: %v, want a usage error", args, err)
		}
	}
	t.Setenv("FLASHSALE_HOT_SKUS", "x,x")
	if _, _, err := parseServeFlags(nil, io.Discard); err == nil {
		t.Fatal("FLASHSALE_HOT_SKUS=x,x accepted")
	}
}

// TestServeFlagsLimits: a limit or timeout of 0 or below is a usage error
// (exit code 2), from the command line or the environment, instead of
// being replaced by the default without a word.
func TestServeFlagsLimits(t *testing.T) {
	bad := [][]string{
		{"--max-body-bytes", "-5"}, {"--max-body-bytes", "0"},
		{"--max-conns", "-3"}, {"--max-conns", "0"},
		{"--max-in-flight", "-1"}, {"--max-in-flight", "0"},
		{"--request-timeout", "-1s"}, {"--request-timeout", "0"},
		{"--read-timeout", "0"}, {"--read-timeout", "-5ms"},
		{"--write-timeout", "0s"}, {"--write-timeout", "-1m"},
		{"--idle-timeout", "-1s"}, {"--idle-timeout", "0"},
		{"--sync-name", strings.Repeat("n", 65)}, {"--sync-name", "a b"}, {"--sync-name", ""},
		{"--hot-skus", manySKUs(server.HotSKUsMax + 1)},
	}
	for _, args := range bad {
		_, _, err := parseServeFlags(args, io.Discard)
		var ue *exitError
		if err == nil || !errors.As(err, &ue) || ue.code != 2 || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%q: %v, want a usage error naming the flag", args, err)
		}
	}
	t.Setenv("FLASHSALE_MAX_CONNS", "0")
	if _, _, err := parseServeFlags(nil, io.Discard); err == nil {
		t.Error("FLASHSALE_MAX_CONNS=0 accepted")
	}
	f, _, err := parseServeFlags([]string{"--max-conns", "1", "--max-body-bytes", "1", "--max-in-flight", "1",
		"--request-timeout", "1ms", "--read-timeout", "1ms", "--write-timeout", "1ms", "--idle-timeout", "1ms"}, io.Discard)
	if err != nil || f.connsMax != 1 || f.bodyBytesMax != 1 || f.inFlightMax != 1 || f.requestTimeout != time.Millisecond ||
		f.readTimeout != time.Millisecond || f.writeTimeout != time.Millisecond || f.idleTimeout != time.Millisecond {
		t.Fatalf("the smallest valid values: %+v, %v", f, err)
	}
}

// manySKUs returns n distinct SKU ids, comma-separated.
func manySKUs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("h%d", i)
	}
	return strings.Join(ids, ",")
}

// TestServeFlagsAdminToken: a token that no Authorization header can carry
// (white space around it, as a token read from a file with its newline, or
// a control character) is a usage error naming the flag, from the command
// line or the environment, instead of a server whose every admin call
// answers 401; the message does not repeat the token. Tokens a header can
// carry are accepted.
func TestServeFlagsAdminToken(t *testing.T) {
	for _, tok := range []string{"s3cret", "s3 cret", "s3\tcret", "s3crét", ""} {
		if f, _, err := parseServeFlags([]string{"--admin-token", tok}, io.Discard); err != nil || f.adminToken != tok {
			t.Errorf("--admin-token %q: %q, %v", tok, f.adminToken, err)
		}
	}
	bad := []string{"s3cret\n", "s3cret\r\n", " s3cret", "s3cret ", "\ts3cret", "s3\x00cret", "s3\ncret", "s3cret\x7f"}
	check := func(tok string, err error) {
		t.Helper()
		var ue *exitError
		if err == nil || !errors.As(err, &ue) || ue.code != 2 || !strings.Contains(err.Error(), "--admin-token") ||
			strings.Contains(err.Error(), "s3") {
			t.Errorf("token %q: %v, want a usage error naming the flag, not the token", tok, err)
		}
	}
	for _, tok := range bad {
		_, _, err := parseServeFlags([]string{"--admin-token", tok}, io.Discard)
		check(tok, err)
	}
	for _, tok := range bad {
		if strings.Contains(tok, "\x00") {
			continue // an environment variable cannot hold NUL
		}
		t.Setenv("FLASHSALE_ADMIN_TOKEN", tok)
		_, _, err := parseServeFlags(nil, io.Discard)
		check(tok, err)
	}
}

// TestServeFlagsAddresses: a listen address net.Listen would refuse, an
// empty --listen (which net.Listen takes for a random port on every
// interface), an empty --data and a --mysql-dsn that does not parse or
// names no database are usage errors (exit code 2) naming the flag, found
// before anything is bound or recovered, from the command line or the
// environment.
func TestServeFlagsAddresses(t *testing.T) {
	bad := [][]string{
		{"--listen", ""}, {"--listen", "8080"}, {"--listen", "127.0.0.1:99999"}, {"--listen", "127.0.0.1:no-such-port"},
		{"--admin-listen", "localhost"}, {"--admin-listen", ":-1"},
		{"--data", ""},
		{"--mysql-dsn", "root@127.0.0.1:3306"}, {"--mysql-dsn", "root@tcp(127.0.0.1:3306)/"},
	}
	for _, args := range bad {
		_, _, err := parseServeFlags(args, io.Discard)
		var ue *exitError
		if err == nil || !errors.As(err, &ue) || ue.code != 2 || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%q: %v, want a usage error naming the flag", args, err)
		}
	}
	t.Run("env", func(t *testing.T) {
		t.Setenv("FLASHSALE_LISTEN", "")
		if _, _, err := parseServeFlags(nil, io.Discard); err == nil {
			t.Error("FLASHSALE_LISTEN= accepted")
		}
	})
	f, _, err := parseServeFlags([]string{"--listen", ":0", "--admin-listen", "", "--data", "d",
		"--mysql-dsn", "root@tcp(127.0.0.1:3306)/test?parseTime=true"}, io.Discard)
	if err != nil || f.listen != ":0" || f.adminListen != "" || f.mysqlDSN == "" {
		t.Fatalf("valid values: %+v, %v", f, err)
	}
	if _, _, err := parseServeFlags([]string{"--listen", "localhost:http", "--admin-listen", "[::1]:0"}, io.Discard); err != nil {
		t.Fatalf("a service name and an IPv6 address: %v", err)
	}
}

// TestServeFlagsEnvParseError: a FLASHSALE_* value that does not parse is a
// usage error that quotes the value and says what the variable wants and
// which flag it sets, not just "parse error".
func TestServeFlagsEnvParseError(t *testing.T) {
	for _, c := range []struct{ env, val, want string }{
		{"FLASHSALE_REQUEST_TIMEOUT", "3", "duration"},
		{"FLASHSALE_DEMO", "yes", "true or false"},
		{"FLASHSALE_MAX_CONNS", "1k", "integer"},
		{"FLASHSALE_REQUEST_IDS_MAX", "99999999999999999999", "integer"},
	} {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(c.env, c.val)
			_, _, err := parseServeFlags(nil, io.Discard)
			var ue *exitError
			flagName := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(c.env, "FLASHSALE_")), "_", "-")
			if err == nil || !errors.As(err, &ue) || ue.code != 2 {
				t.Fatalf("%s=%s: %v, want a usage error", c.env, c.val, err)
			}
			for _, s := range []string{c.env, strconv.Quote(c.val), flagName, c.want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s=%s: %q does not say %s", c.env, c.val, err, s)
				}
			}
		})
	}
}
