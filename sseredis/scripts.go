package sseredis

import (
	"embed"

	"github.com/redis/go-redis/v9"
)

// lua holds the scripts that make each step of the registry atomic in
// Redis, one file each; lib.lua is put in front of every one.
//
//go:embed lua/*.lua
var lua embed.FS

// scripts are the registry's Lua scripts, loaded once. Each script's file
// says what its KEYS and ARGV are and what it returns.
type scripts struct {
	attach, attachRun, detach, start, takeover, append, renew, release, delivered, remove, drop *redis.Script
}

func loadScripts() scripts {
	lib := luaFile("lib")
	script := func(name string) *redis.Script { return redis.NewScript(lib + luaFile(name)) }
	return scripts{
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
}

// luaFile returns the text of lua/name.lua, which go:embed guarantees.
func luaFile(name string) string {
	b, err := lua.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("sseredis: " + err.Error()) // a file named here is missing from lua/
	}
	return string(b)
}
