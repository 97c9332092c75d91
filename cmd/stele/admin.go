package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stele-log/stele/client"
)

// adminFlags parses the common flags of an admin subcommand and returns
// the client and the remaining arguments.
func adminFlags(name string, args []string, stderr io.Writer, extra func(fsFlags)) (*client.Client, []string, error) {
	fs := newFlags(name, stderr)
	var cf clientFlags
	cf.register(fs)
	if extra != nil {
		extra(fs)
	}
	positional, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if cf.key == "" {
		cf.key = os.Getenv("STELE_KEY")
	}
	c, err := cf.client()
	return c, positional, err
}

// fsFlags is the part of flag.FlagSet the subcommands use.
type fsFlags interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
}

func subcommand(args []string, usage string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, errors.New(usage)
	}
	return args[0], args[1:], nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0) }

type keyOut struct {
	ID         string     `json:"id"`
	Prefix     string     `json:"prefix"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Key        string     `json:"key"`
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// runKeys is `stele keys create|list|rotate|revoke`.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(args, "usage: stele keys create|list|rotate|revoke [flags]")
	if err != nil {
		return err
	}
	var name, scopes string
	var expires, grace time.Duration
	var asJSON bool
	c, pos, err := adminFlags("keys "+sub, rest, stderr, func(fs fsFlags) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		switch sub {
		case "create":
			fs.StringVar(&name, "name", "", "name of the key")
			fs.StringVar(&scopes, "scopes", "events:write", "comma-separated scopes: events:write, events:read, admin, operator")
			fs.DurationVar(&expires, "expires-in", 0, "expire the key after this long (default: never)")
		case "rotate":
			fs.DurationVar(&grace, "grace", 0, "how long the old secret keeps working")
		}
	})
	if err != nil {
		return err
	}
	var out keyOut
	switch sub {
	case "create":
		req := map[string]any{"name": name, "scopes": strings.Split(scopes, ",")}
		if expires > 0 {
			req["expires_at"] = time.Now().Add(expires).UTC()
		}
		if err := c.Post(ctx, "/v1/keys", req, &out); err != nil {
			return err
		}
	case "list":
		var res struct{ Keys []keyOut }
		if err := c.Get(ctx, "/v1/keys", &res); err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, res.Keys)
		}
		tw := table(stdout)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED (UTC)\tLAST USED\tEXPIRES\tREVOKED")
		for _, k := range res.Keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, safeText(k.Name), strings.Join(k.Scopes, ","), when(&k.CreatedAt), when(k.LastUsedAt), when(k.ExpiresAt), when(k.RevokedAt))
		}
		return tw.Flush()
	case "rotate", "revoke":
		if len(pos) != 1 {
			return fmt.Errorf("usage: stele keys %s KEY_ID", sub)
		}
		if sub == "rotate" {
			err = c.Post(ctx, "/v1/keys/"+pos[0]+"/rotate", map[string]any{"grace_seconds": int64(grace.Seconds())}, &out)
		} else {
			err = c.Delete(ctx, "/v1/keys/"+pos[0], &out)
		}
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown subcommand keys %s", sub)
	}
	if asJSON {
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "key %s (%s) %s\n", out.ID, safeText(out.Name), strings.Join(out.Scopes, ","))
	if out.Key != "" {
		fmt.Fprintf(stdout, "secret, shown once: %s\n", out.Key)
	}
	if out.RevokedAt != nil {
		fmt.Fprintf(stdout, "revoked at %s\n", when(out.RevokedAt))
	}
	return nil
}

type userOut struct {
	ID       string    `json:"id"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created_at"`
	Disabled bool      `json:"disabled"`
	Password string    `json:"password"`
}

// runUsers is `stele users create|list|disable`.
func runUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(args, "usage: stele users create|list|disable [flags]")
	if err != nil {
		return err
	}
	var email, name, role string
	var asJSON bool
	c, pos, err := adminFlags("users "+sub, rest, stderr, func(fs fsFlags) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		if sub == "create" {
			fs.StringVar(&email, "email", "", "the user's email, used to sign in")
			fs.StringVar(&name, "name", "", "the user's name")
			fs.StringVar(&role, "role", "viewer", "owner, admin or viewer")
		}
	})
	if err != nil {
		return err
	}
	var out userOut
	switch sub {
	case "create":
		// The password comes from STELE_USER_PASSWORD, never from a flag
		// (flags show up in process listings); without it one is generated.
		req := map[string]any{"email": email, "name": name, "role": role}
		if pw := os.Getenv("STELE_USER_PASSWORD"); pw != "" {
			req["password"] = pw
		}
		if err := c.Post(ctx, "/v1/users", req, &out); err != nil {
			return err
		}
	case "list":
		var res struct{ Users []userOut }
		if err := c.Get(ctx, "/v1/users", &res); err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, res.Users)
		}
		tw := table(stdout)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLE\tCREATED (UTC)\tSTATE")
		for _, u := range res.Users {
			state := "active"
			if u.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, safeText(u.Email), safeText(u.Name), u.Role, when(&u.Created), state)
		}
		return tw.Flush()
	case "disable":
		if len(pos) != 1 {
			return errors.New("usage: stele users disable USER_ID")
		}
		if err := c.Patch(ctx, "/v1/users/"+pos[0], map[string]any{"disabled": true}, &out); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown subcommand users %s", sub)
	}
	if asJSON {
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "user %s <%s> %s", out.ID, safeText(out.Email), out.Role)
	if out.Disabled {
		fmt.Fprint(stdout, " (disabled)")
	}
	fmt.Fprintln(stdout)
	if out.Password != "" {
		fmt.Fprintf(stdout, "password, shown once: %s\n", out.Password)
	}
	return nil
}

// runWorkspaces is `stele workspaces create|list` (operator key).
func runWorkspaces(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(args, "usage: stele workspaces create|list [flags]")
	if err != nil {
		return err
	}
	var id, name string
	var asJSON bool
	c, _, err := adminFlags("workspaces "+sub, rest, stderr, func(fs fsFlags) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		if sub == "create" {
			fs.StringVar(&id, "id", "", "workspace id: lowercase letters, digits and hyphens")
			fs.StringVar(&name, "name", "", "display name")
		}
	})
	if err != nil {
		return err
	}
	type wsOut struct {
		ID      string    `json:"id"`
		Name    string    `json:"name"`
		Created time.Time `json:"created_at"`
		Origin  string    `json:"origin"`
		LogKey  string    `json:"log_key"`
	}
	switch sub {
	case "create":
		var res struct {
			Workspace wsOut
			Key       keyOut
		}
		if err := c.Post(ctx, "/v1/workspaces", map[string]string{"id": id, "name": name}, &res); err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, res)
		}
		fmt.Fprintf(stdout, "workspace %s (%s)\n  origin:    %s\n  log key:   %s\n  admin key: %s  (shown once)\n",
			res.Workspace.ID, safeText(res.Workspace.Name), res.Workspace.Origin, res.Workspace.LogKey, res.Key.Key)
	case "list":
		var res struct{ Workspaces []wsOut }
		if err := c.Get(ctx, "/v1/workspaces", &res); err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, res.Workspaces)
		}
		tw := table(stdout)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED (UTC)\tORIGIN")
		for _, w := range res.Workspaces {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, safeText(w.Name), when(&w.Created), w.Origin)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown subcommand workspaces %s", sub)
	}
	return nil
}
