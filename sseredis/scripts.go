package sseredis

import (
	"context"
	"embed"

	"github.com/redis/go-redis/v9"
)

// lua holds the scripts that make each step of the registry atomic in
// Redis, one file each; lib.lua is put in front of every one.
//
//go:embed lua/*.lua
var lua embed.FS

// scripts are the registry's Lua scripts, read once from lua/ and loaded
// into Redis by New. Each script's file says what its KEYS and ARGV are and
// what it returns.
type scripts struct {
	attach, attachRun, detach, start, takeover, append, renew, release, delivered, remove, drop *redis.Script

	all []*redis.Script // every one of the above
}

// newScripts reads the scripts; load puts them in Redis.
func newScripts() scripts {
	lib := luaFile("lib")
	var all []*redis.Script
	script := func(name string) *redis.Script {
		s := redis.NewScript(lib + luaFile(name))
		all = append(all, s)
		return s
	}
	s := scripts{
		attach:    script("attach"),
		attachRun: script("attach_run"),
		detach:    script("detach"),
		start:     script("start"),
		takeover:  script("takeover"),
		append:    script("append"),
		renew:     script("renew"),
		release:   script("release"),
		delivered: script("delivered"),
		remove:    script("remove"),
		drop:      script("drop"),
	}
	s.all = all
	return s
}

// load puts every script in Redis's script cache, so that no first call is
// refused with NOSCRIPT; it fails on a Redis that does not run scripts. A
// Redis that restarts forgets them, and the calls load them again
// (evalEach; Script.Run falls back on EVAL). One call each: Script.Load
// takes the hash from its answer at once, which a pipeline has not got yet.
func (s scripts) load(ctx context.Context, rdb *redis.Client) error {
	for _, script := range s.all {
		if err := script.Load(ctx, rdb).Err(); err != nil {
			return err
		}
	}
	return nil
}

// luaFile returns the text of lua/name.lua, which go:embed guarantees.
func luaFile(name string) string {
	b, err := lua.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("sseredis: " + err.Error()) // a file named here is missing from lua/
	}
	return string(b)
}

// evalEach runs script s n times in one pipeline, call i with the keys and
// arguments that args(i) gives, and returns each call's command. It sends
// EVALSHA, so the script's text crosses the network only when Redis has
// lost it (it restarted, or its scripts were flushed): Redis then refuses
// the calls with NOSCRIPT, and once the script is loaded they go again.
// Each command has its own answer or error.
func evalEach(ctx context.Context, rdb *redis.Client, s *redis.Script, n int, args func(i int) (keys []string, argv []any)) []*redis.Cmd {
	cmds := make([]*redis.Cmd, n)
	send := func(which []int) {
		_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				keys, argv := args(i)
				cmds[i] = s.EvalSha(ctx, p, keys, argv...)
			}
			return nil
		}) // each command has its own error
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	send(all)
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 && s.Load(ctx, rdb).Err() == nil {
		send(again)
	}
	return cmds
}
