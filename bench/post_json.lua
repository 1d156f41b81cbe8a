-- The echo scenario of bench/run.py: each request POSTs a 4 KiB JSON document to /echo
-- (wrk adds the Content-Length); bench/apps/hello.py sends it back.
local prefix, suffix = '{"data": "', '"}'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = prefix .. string.rep("x", 4096 - #prefix - #suffix) .. suffix
