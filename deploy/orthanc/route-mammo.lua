-- brgan-pacs routing rule for Orthanc 1.10 (RESEARCH USE ONLY - not a medical device).
--
-- When a study becomes stable (no new instance for "StableAge" seconds), send its mammography
-- series to the DICOM modality "brgan" (declared in orthanc.json) as an asynchronous Orthanc
-- job:
--   * only series whose Modality is MG (2D mammography and tomosynthesis);
--   * never a series made by brgan-pacs (Manufacturer "brgan-pacs"). Our results are stored
--     back into the same study, which makes it unstable and then stable again: this is the
--     loop guard;
--   * never an instance sent before: each sent instance gets the metadata "BrganRouted"
--     (declared in "UserMetadata"), so a study that becomes stable again sends only what is
--     new (a late image), and nothing at all when only our results were added.
-- A study without any new MG instance is left alone. Failed sends stay in Orthanc's job list
-- (Orthanc Explorer > Jobs, or GET /jobs) and can be resubmitted:
--   curl -X POST http://localhost:8042/jobs/<job id>/resubmit -d ''

local BRGAN_MODALITY = 'brgan'
local BRGAN_MANUFACTURER = 'brgan-pacs'
local ROUTED_METADATA = 'BrganRouted'

local function Trim(value)
  return (string.gsub(value or '', '^%s*(.-)%s*$', '%1'))
end

local function IsOurs(seriesTags)
  return string.lower(Trim(seriesTags['Manufacturer'])) == BRGAN_MANUFACTURER
end

local function AlreadyRouted(instanceId)
  local names = ParseJson(RestApiGet('/instances/' .. instanceId .. '/metadata'))
  for _, name in ipairs(names) do
    if name == ROUTED_METADATA then
      return true
    end
  end
  return false
end

-- The instances of the study that brgan-pacs should receive now.
local function InstancesToRoute(studyId)
  local selected = {}
  for _, series in ipairs(ParseJson(RestApiGet('/studies/' .. studyId .. '/series'))) do
    local tags = series['MainDicomTags']
    if Trim(tags['Modality']) == 'MG' and not IsOurs(tags) then
      for _, instanceId in ipairs(series['Instances']) do
        if not AlreadyRouted(instanceId) then
          table.insert(selected, instanceId)
        end
      end
    end
  end
  return selected
end

function OnStableStudy(studyId, tags, metadata)
  local instances = InstancesToRoute(studyId)
  if #instances == 0 then
    return
  end
  local answer = RestApiPost('/modalities/' .. BRGAN_MODALITY .. '/store',
                             DumpJson({ Resources = instances, Asynchronous = true }, true))
  local job = ParseJson(answer)
  local stamp = os.date('!%Y-%m-%dT%H:%M:%SZ')
  for _, instanceId in ipairs(instances) do
    RestApiPut('/instances/' .. instanceId .. '/metadata/' .. ROUTED_METADATA, stamp)
  end
  print('brgan-pacs: study ' .. studyId .. ': ' .. #instances ..
        ' MG instance(s) queued for ' .. BRGAN_MODALITY .. ' in job ' .. job['ID'])
end

-- A routing job that failed (listener down, association refused) is reported in the log.
function OnJobFailure(jobId)
  local job = ParseJson(RestApiGet('/jobs/' .. jobId))
  if job['Type'] == 'DicomModalityStore' and job['Content']['RemoteAet'] == 'BRGAN' then
    print('brgan-pacs: routing job ' .. jobId .. ' failed (' ..
          tostring(job['ErrorDescription']) .. '); resubmit with POST /jobs/' .. jobId ..
          '/resubmit once the listener answers')
  end
end
