-- The paced hello-world scenario of bench/run.py: each connection waits PACE_MS (1 ms) after a
-- response before it sends its next request, so the 64 connections offer about a third of what
-- the fastest servers answer at full load and wrk's own core is not the limit. wrk starts a
-- request's clock when it writes it, so the pause is not counted in the latency.
local pace = tonumber(os.getenv("PACE_MS") or "1")
delay = function()
  return pace
end
