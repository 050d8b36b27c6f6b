-- delivered.lua records that a stream has written event seq, the final
-- event of the client's run.
--
-- KEYS: hash. ARGV: seq.
local c = redis.call('HMGET', KEYS[1], 'next', 'finished')
if c[2] == '1' and tonumber(c[1]) - 1 == tonumber(ARGV[1]) then
	redis.call('HSET', KEYS[1], 'finalSent', '1')
end
return 0
