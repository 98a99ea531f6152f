-- Argo CD action "switchover" of a CheckoutRegion: writes the request annotation the operator consumes
-- (see ../discovery.lua). The id is new on every run of the action (resourceVersion + time), so
-- a re-sync of the same annotation is never carried out twice.
local os = require("os")
-- The target must be one of spec.failover.targets (this also keeps the JSON well formed:
-- a listed target is a DNS label).
local target = actionParams["target"]
local listed = false
local names = ""
for i, t in ipairs((obj.spec.failover or {}).targets or {}) do
  if t == target then
    listed = true
  end
  if i > 1 then
    names = names .. ", "
  end
  names = names .. t
end
if target == nil or target == "" then
  error("switchover needs a target: one of spec.failover.targets (" .. names .. ")", 0)
end
if not listed then
  error("target " .. target .. " is not one of spec.failover.targets (" .. names .. ")", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local id = "argocd-" .. (obj.metadata.resourceVersion or "0") .. "-" .. os.time()
obj.metadata.annotations["checkout-operator.io/request"] = "{\"id\":\"" .. id
  .. "\",\"action\":\"switchover\",\"target\":\"" .. target .. "\",\"requestedBy\":\"argocd\"}"
return obj
