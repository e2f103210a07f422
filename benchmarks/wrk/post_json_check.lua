-- wrk script for a short validation run: POST the JSON body (first script argument) and count answers
-- that are not status 200 or whose body lacks the expected text (second script argument, optional).
-- Prints "checked N bad M" at the end. Slower than post_json.lua (wrk parses every body), so it is not
-- used for the measured runs.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"input": 4.0}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  if args[1] ~= nil then
    wrk.body = args[1]
  end
  expect = args[2]
  checked = 0
  bad = 0
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 or (expect ~= nil and string.find(body, expect, 1, true) == nil) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_checked, total_bad = 0, 0
  for _, thread in ipairs(threads) do
    total_checked = total_checked + thread:get("checked")
    total_bad = total_bad + thread:get("bad")
  end
  io.write(string.format("checked %d bad %d\n", total_checked, total_bad))
end
