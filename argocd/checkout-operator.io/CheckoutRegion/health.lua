-- Argo CD health of a CheckoutRegion (checkout-operator.io/v1alpha1).
-- Runs in Argo CD's argocd-cm sandbox: base, table, package and a safe os only (no string, no
-- math), so no resource.customizations.useOpenLibs is needed. From what the operator writes:
--   Progressing  status older than metadata.generation; a home market Fencing (moving), with
--                its writer and target; workloads rolling out
--   Degraded     Degraded=True (e.g. an invalid spec); a home market Down; a home market written
--                by another region (failed over away from here); ReplicationLagging=True (lag
--                above maxLagOnFailover); probes failing (health Unhealthy); Ready=False
--   Healthy      Ready=True and every home market served at home
--   Unknown      Ready=Unknown or no Ready condition (the operator says nothing usable)
local hs = {}

local function find(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function text(value, fallback)
  if value ~= nil and value ~= "" then
    return value
  end
  return fallback
end

local function contains(list, value)
  if list == nil then
    return false
  end
  for _, v in ipairs(list) do
    if v == value then
      return true
    end
  end
  return false
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the region"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
    .. " (status is for " .. status.observedGeneration .. ")"
  return hs
end

local conditions = status.conditions
local degradedCond = find(conditions, "Degraded")
if degradedCond ~= nil and degradedCond.status == "True" then
  hs.status = "Degraded"
  hs.message = text(degradedCond.message, text(degradedCond.reason, "Degraded"))
  return hs
end

local here = obj.spec and obj.spec.region
local degraded = {}
local progressing = {}

for _, m in ipairs(status.markets or {}) do
  if m.state == "Down" then
    table.insert(degraded, "market " .. m.market .. " is down: " .. text(m.message, "no healthy legal writer"))
  elseif m.state == "Fencing" then
    table.insert(progressing, "market " .. m.market .. " moving from " .. m.writer .. " to "
      .. text(m.target, "another region") .. ": " .. text(m.message, "fencing"))
  elseif here ~= nil and m.writer ~= nil and m.writer ~= here then
    -- Why: the newest recorded move of this market to its writer (history is newest first).
    local why = ""
    local records = status.history or {}
    if #records == 0 and status.lastFailover ~= nil then
      records = { status.lastFailover }
    end
    for _, rec in ipairs(records) do
      if rec.to == m.writer and contains(rec.markets, m.market) then
        why = " (" .. text(rec.reason, "moved") .. " at " .. text(rec.time, "?") .. ")"
        break
      end
    end
    table.insert(degraded, "market " .. m.market .. " failed over to " .. m.writer .. " at epoch "
      .. m.epoch .. why)
  end
end

local lagging = find(conditions, "ReplicationLagging")
if lagging ~= nil and lagging.status == "True" then
  table.insert(degraded, "replication lagging: " .. text(lagging.message, text(lagging.reason, "above maxLagOnFailover")))
end

if status.health ~= nil and status.health.state == "Unhealthy" then
  table.insert(degraded, "probes failing (" .. (status.health.consecutiveFailures or 0) .. " in a row): "
    .. text(status.health.message, "no detail"))
end

local ready = find(conditions, "Ready")
local rolling = find(conditions, "Progressing")
if ready ~= nil and ready.status == "False" then
  if rolling ~= nil and rolling.status == "True" then
    table.insert(progressing, text(ready.message, text(rolling.message, "rolling out")))
  else
    table.insert(degraded, text(ready.message, text(ready.reason, "not ready")))
  end
end

if #degraded > 0 then
  for _, p in ipairs(progressing) do
    table.insert(degraded, p)
  end
  hs.status = "Degraded"
  hs.message = table.concat(degraded, "; ")
  return hs
end
if #progressing > 0 then
  hs.status = "Progressing"
  hs.message = table.concat(progressing, "; ")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready.message, "Ready")
  if status.overrides ~= nil and status.overrides.automaticFailoverPaused then
    hs.message = hs.message .. "; automatic failover paused by request "
      .. text(status.overrides.requestId, "?")
  end
  return hs
end
hs.status = "Unknown"
if ready ~= nil then
  hs.message = "Ready is " .. text(ready.status, "empty") .. ": " .. text(ready.message, text(ready.reason, "no message"))
else
  hs.message = "The operator reports no Ready condition"
end
return hs
