package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"gin-sse-progress/auth"
)

// runToken is `gin-sse-progress token -sub alice -ttl 1h`: it prints a
// token for the subject, signed with $AUTH_SECRET (or -secret), for the
// curl examples of the README and for the tests.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name+" token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the token's subject: who it names (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token lasts")
	secret := fs.String("secret", getenv("AUTH_SECRET"), "the `secret` the server was given with -auth-secret [$AUTH_SECRET]")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return &usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case *sub == "":
		return &usageError{errors.New("-sub is required")}
	case *ttl <= 0:
		return &usageError{fmt.Errorf("-ttl must be positive, got %s", *ttl)}
	case len(*secret) < auth.MinSecret:
		return &usageError{fmt.Errorf("the secret ($AUTH_SECRET or -secret) is %d bytes; it must be at least %d", len(*secret), auth.MinSecret)}
	}
	token, err := auth.Sign([]byte(*secret), *sub, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}
