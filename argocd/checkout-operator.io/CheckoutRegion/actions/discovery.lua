-- Argo CD resource actions of a CheckoutRegion. Each action writes one imperative request
-- (annotation checkout-operator.io/request, a JSON object with a fresh id) that the operator
-- consumes once and records in status.request (Accepted, or Refused with the failover plan's
-- reason); accepted requests stay in force in status.overrides. The spec is not touched, so
-- auto-sync with self-heal neither reverts nor repeats an action. Runs without string/math.
local actions = {}
local status = obj.status or {}
local overrides = status.overrides or {}
local failover = (obj.spec and obj.spec.failover) or {}
local targets = failover.targets or {}
local here = obj.spec and obj.spec.region

local writesHere = false
local away = false
for _, m in ipairs(status.markets or {}) do
  if m.writer == here then
    writesHere = true
  else
    away = true
  end
end
local listed = ""
for i, t in ipairs(targets) do
  if i > 1 then
    listed = listed .. ", "
  end
  listed = listed .. t
end

actions["switchover"] = {
  ["iconClass"] = "fa fa-fw fa-right-left",
  ["displayName"] = "Switch over the markets to a target region (" .. listed .. ")",
  ["disabled"] = (#targets == 0 or not writesHere),
  ["params"] = {
    {
      ["name"] = "target",
      ["default"] = targets[1] or ""
    }
  }
}
actions["drain"] = {
  ["iconClass"] = "fa fa-fw fa-arrow-right-from-bracket",
  ["displayName"] = "Drain: move the markets to the first healthy legal target",
  ["disabled"] = (#targets == 0 or not writesHere)
}
actions["return-home"] = {
  ["iconClass"] = "fa fa-fw fa-house",
  ["displayName"] = "Return the home markets to this region",
  ["disabled"] = not away
}
if overrides.automaticFailoverPaused then
  actions["resume"] = {
    ["iconClass"] = "fa fa-fw fa-play",
    ["displayName"] = "Resume automatic failover"
  }
else
  actions["pause"] = {
    ["iconClass"] = "fa fa-fw fa-pause",
    ["displayName"] = "Pause automatic failover"
  }
end
return actions
