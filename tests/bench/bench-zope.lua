-- wrk script for `make bench-zope`'s write scenario: each request edits a
-- random document of the folder (WRK_EDIT_PREFIX .. 1..WRK_EDIT_DOCUMENTS)
-- through plone.restapi's PATCH, with a new title every time so that every
-- request commits a change. Headers (auth, JSON) come from wrk -H; the
-- summary line comes from bench.lua (BENCH_LUA).
dofile(os.getenv("BENCH_LUA"))

local prefix = os.getenv("WRK_EDIT_PREFIX")
local documents = tonumber(os.getenv("WRK_EDIT_DOCUMENTS"))
local threads = 0
local edits = 0

function setup(thread)
   threads = threads + 1
   thread:set("thread_number", threads)
end

function init(args)
   -- Each wrk thread has its own Lua state: seed them apart, or they would
   -- all edit the same documents in the same order.
   math.randomseed(os.time() * 100 + (thread_number or 0))
end

function request()
   edits = edits + 1
   local body = string.format('{"title": "Edited %d.%d", "description": "edit %d"}',
                              thread_number or 0, edits, edits)
   return wrk.format("PATCH", prefix .. math.random(documents), nil, body)
end
