-- bench/webhooks.lua — wrk script for bench/webhooks.sh: signed GitHub push
-- deliveries, each with its own delivery id.
--
-- The body is fixed and signed once (the signature covers the body only;
-- the delivery id is a header), so every request is valid and distinct:
-- X-GitHub-Delivery = bench-<run>-<thread>-<n>.  Reads the body and its
-- X-Hub-Signature-256 value from the files named by WEBHOOK_BODY and
-- WEBHOOK_SIG (environment), and the run tag from WEBHOOK_RUN.  Counts the
-- answers by status; done() prints them as "status N COUNT" lines.

local threads = {}
local counter = 1

function setup(thread)
	thread:set("tid", counter)
	counter = counter + 1
	table.insert(threads, thread)
end

local function slurp(name)
	local f = assert(io.open(name, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end

function init(args)
	body = slurp(os.getenv("WEBHOOK_BODY"))
	sig = slurp(os.getenv("WEBHOOK_SIG")):gsub("%s+$", "")
	run = os.getenv("WEBHOOK_RUN") or "0"
	n = 0
	codes = {}
	prefix = "bench-" .. run .. "-" .. tid .. "-"
	headers = {
		["Content-Type"] = "application/json",
		["X-GitHub-Event"] = "push",
		["X-Hub-Signature-256"] = sig,
		["User-Agent"] = "GitHub-Hookshot/bench",
	}
end

function request()
	n = n + 1
	headers["X-GitHub-Delivery"] = prefix .. n
	return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, b)
	codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
	local total = {}
	for _, t in ipairs(threads) do
		local c = t:get("codes")
		for k, v in pairs(c) do
			total[k] = (total[k] or 0) + v
		end
	end
	for k, v in pairs(total) do
		io.write(string.format("status %d %d\n", k, v))
	end
end
