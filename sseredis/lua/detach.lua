-- detach.lua starts a client's grace period when its stream goes: its keys
-- expire Grace from now. A stream that a newer one replaced, on any
-- instance, leaves them alone: the newer stream keeps them.
--
-- KEYS: hash, log. ARGV: the stream's attach number, grace in ms.
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 0
