-- config-file.lua (t/fuzz): the config file the config fuzz target has
-- corral.config.load run. It declares whatever the target decoded from
-- the fuzz input, which it finds as the module "fuzz.input".
for _, d in ipairs(require "fuzz.input") do
  if d.kind == "pool" then
    pool(d.name)(d.options)
  elseif d.kind == "pool-only" then
    pool(d.name)
  elseif d.kind == "settings" then
    settings(d.options)
  else
    plugin(d.name)(d.options)
  end
end
