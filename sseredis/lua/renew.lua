-- renew.lua extends the claim of the run that token owns. It returns 1, or
-- 0 if the run no longer holds it.
--
-- KEYS: run. ARGV: token, lease in ms.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
