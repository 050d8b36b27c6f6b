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

-- Why a stream cannot continue from its client's Last-Event-ID, as the
-- attach scripts answer it; keys.go reads the codes. c is the client's hash
-- as HMGET next, first read it, and isNew says attach made the client just
-- now. An id ahead of the client's moves its numbering on to it, so that
-- ids never go backwards; the events logged before go.
local gap_none, gap_unknown, gap_not_kept, gap_ahead = 0, 1, 2, 3
local function resume_gap(hash, log, last, nxt, first, isNew)
	if isNew then
		return gap_unknown, nxt, first
	end
	if last >= nxt then
		redis.call('HSET', hash, 'next', num(last + 1), 'first', num(last + 1))
		redis.call('XTRIM', log, 'MINID', '0-' .. num(last + 1))
		return gap_ahead, last + 1, last + 1
	end
	if last + 1 < first then
		return gap_not_kept, nxt, first
	end
	return gap_none, nxt, first
end
