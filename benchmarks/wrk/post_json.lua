-- wrk script: POST a JSON body to the URL. The body is the first script argument (after "--"),
-- e.g. wrk -s post_json.lua http://127.0.0.1:8000/predict -- '{"input": 4.0}'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"input": 4.0}'

function init(args)
  if args[1] ~= nil then
    wrk.body = args[1]
  end
end
