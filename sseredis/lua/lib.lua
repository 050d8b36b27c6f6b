-- lib.lua is put in front of every script (see scripts.go).
--
-- Lua numbers are doubles: exact for ids below 2^53, but printed in
-- exponent form from 1e14 on. num prints them in full.
local function num(n) return string.format('%.0f', n) end

-- The messages published on a client's channels. messages.go reads them;
-- the two files change together.
local function msg_event(seq, final, name, data) -- an event was logged
	return 'e' .. seq .. ' ' .. final .. ' ' .. name .. '\n' .. data
end
local function msg_attached(gen) return 'a' .. num(gen) end -- older streams end
local msg_removed = 'r' -- the client is gone: streams end, its run stops
local msg_dropped = 'd' -- its stream ends, as a dropped connection would
