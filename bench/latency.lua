-- The latencies wrk recorded, as it measured them. bench/run.py appends this to every wrk
-- script it runs (with WRK_CONNECTIONS set to the run's connections).
--
-- Before it reports, wrk 4 corrects its latency histogram for coordinated omission: with
-- interval = run time / (requests / connections), each recorded latency L of 2 intervals or more
-- adds one sample at L - interval, L - 2 intervals, ... down to above one interval (wrk.c's
-- main, stats.c's stats_correct). The added samples were never measured: they model a client
-- that sends at a constant rate equal to the server's own throughput. At full load a stall of
-- a few milliseconds (the virtual machine's, or wrk's own) then weighs more the faster the
-- server, since its interval is shorter. So this prints both: wrk's percentiles, and those of
-- the recorded latencies, the correction undone.
--
-- Undoing it: stats_correct reads every bin before anything is added to it (it adds only to
-- lower bins, walking up), so corrected[m] = recorded[m] + the sum of recorded[m + k*interval]
-- over k >= 1 (when m > interval). Walking down from the top, each recorded[m] is
-- corrected[m] minus the recorded bins above it, already known. The recorded total must equal
-- the requests wrk completed, less those slower than its timeout (it counts them as timeouts
-- and records nothing); bench/run.py checks that and refuses a run where it does not hold.
--
-- Output, in microseconds: LATENCY interval=I corrected=N p50=.. p99=.. recorded=N p50=.. p99=..

local connections = tonumber(os.getenv("WRK_CONNECTIONS") or "")

-- wrk's stats_percentile: the first value whose cumulative count reaches round(p% * n + 0.5).
local function percentile(values, counts, total, p)
  local rank = math.floor(p / 100 * total + 0.5 + 0.5)
  local seen = 0
  for i = 1, #values do
    seen = seen + counts[values[i]]
    if seen >= rank then
      return values[i]
    end
  end
  return values[#values] or 0
end

done = function(summary, latency, requests)
  local values, corrected = {}, {}
  local corrected_total = 0
  for i = 1, #latency do
    local value, count = latency(i)
    values[i] = value
    corrected[value] = count
    corrected_total = corrected_total + count
  end
  local per_connection = connections and math.floor(summary.requests / connections) or 0
  local interval = per_connection > 0 and math.floor(summary.duration / per_connection) or nil
  local recorded, recorded_total = {}, 0
  for i = #values, 1, -1 do
    local m = values[i]
    local count = corrected[m]
    if interval and m > interval then
      local k = m + interval
      while k <= latency.max do -- k > 2 intervals: bins stats_correct took from
        count = count - (recorded[k] or 0)
        k = k + interval
      end
    end
    recorded[m] = count
    recorded_total = recorded_total + count
  end
  io.write(string.format(
    "LATENCY interval=%d corrected=%d p50=%d p99=%d recorded=%d p50=%d p99=%d\n",
    interval or 0,
    corrected_total,
    percentile(values, corrected, corrected_total, 50),
    percentile(values, corrected, corrected_total, 99),
    recorded_total,
    percentile(values, recorded, recorded_total, 50),
    percentile(values, recorded, recorded_total, 99)
  ))
end
