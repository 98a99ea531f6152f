-- Argo CD health of a PSPRoute (checkout-operator.io/v1alpha1).
-- Progressing until the operator has observed the current generation; then Degraded=True ->
-- Degraded (e.g. an invalid spec), Ready=True -> Healthy.
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

local generation = obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the route"
  return hs
end
if generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
    .. " (status is for " .. obj.status.observedGeneration .. ")"
  return hs
end
local degraded = find(obj.status.conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message or "Degraded"
  return hs
end
local ready = find(obj.status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.message or "Not ready"
  return hs
end
-- Ready=Unknown, no Ready condition or an unknown shape: say so instead of waiting forever.
hs.status = "Unknown"
hs.message = "The operator reports no Ready condition for the route"
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = "Ready is Unknown: " .. ready.message
end
return hs
