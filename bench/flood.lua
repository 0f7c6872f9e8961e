-- wrk script for bench/load.sh: a flood of random, well-formed fm_ keys
-- (a new one per request), each a tools/call. A 401 or 429 answer is what
-- a flood should get; anything else is counted as unexpected.
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
  path = os.getenv("MCP_PATH") or "/mcp"
  body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
  unexpected = 0
  throttled = 0
end

local function random_key()
  local t = {}
  for i = 1, 43 do
    local n = math.random(1, 64)
    t[i] = alphabet:sub(n, n)
  end
  return "fm_" .. table.concat(t)
end

function request()
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = "2025-11-25",
    ["Authorization"] = "Bearer " .. random_key(),
  }, body)
end

function response(status, headers, body)
  if status == 429 then
    throttled = throttled + 1
  elseif status ~= 401 then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("flood: requests=%d rps=%.1f\n",
    summary.requests, summary.requests / (summary.duration / 1e6)))
end
