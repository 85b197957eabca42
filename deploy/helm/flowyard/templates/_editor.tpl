{{/*
The domain under which every instance's editor has an origin of its own, <instance id>.<domain>, served by the
API: editor.domain, or editor.<the host of publicURL> (what flowyard itself defaults to).
*/}}
{{- define "flowyard.editorDomain" -}}
{{- .Values.editor.domain | default (printf "editor.%s" (urlParse .Values.publicURL).hostname) | lower -}}
{{- end }}

{{/*
The domain under which every instance serves its flows' endpoints at <instance name>.<domain>, through the API:
apps.domain, or apps.<the host of publicURL> (what flowyard itself defaults to).
*/}}
{{- define "flowyard.appsDomain" -}}
{{- .Values.apps.domain | default (printf "apps.%s" (urlParse .Values.publicURL).hostname) | lower -}}
{{- end }}
