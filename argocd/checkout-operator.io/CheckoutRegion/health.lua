-- Argo CD health of a CheckoutRegion (checkout-operator.io/v1alpha1).
-- Progressing until the operator has observed the current generation; then from the
-- conditions the operator writes: Degraded=True -> Degraded, Ready=True -> Healthy,
-- Progressing=True -> Progressing; a region whose markets failed over is Degraded.
local hs = {}

local function find(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local generation = obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the region"
  return hs
end
if generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. string.format("%d", generation)
    .. " (status is for " .. string.format("%d", obj.status.observedGeneration) .. ")"
  return hs
end

local conditions = obj.status.conditions
local degraded = find(conditions, "Degraded")
local ready = find(conditions, "Ready")
local progressing = find(conditions, "Progressing")

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end
if obj.status.phase == "FailedOver" then
  hs.status = "Degraded"
  hs.message = "The region's markets failed over to another region"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    hs.message = hs.message .. ": " .. ready.message
  end
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Progressing")
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
  return hs
end
hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
