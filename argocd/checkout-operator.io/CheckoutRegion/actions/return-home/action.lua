-- Argo CD action "return-home" of a CheckoutRegion: writes the request annotation the operator consumes
-- (see ../discovery.lua). The id is new on every run of the action (resourceVersion + time), so
-- a re-sync of the same annotation is never carried out twice.
local os = require("os")

if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local id = "argocd-" .. (obj.metadata.resourceVersion or "0") .. "-" .. os.time()
obj.metadata.annotations["checkout-operator.io/request"] = "{\"id\":\"" .. id
  .. "\",\"action\":\"return-home\",\"requestedBy\":\"argocd\"}"
return obj
