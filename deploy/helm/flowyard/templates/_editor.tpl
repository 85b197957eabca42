{{/*
The domain under which every instance's editor has an origin of its own, <instance id>.<domain>, served by the
API: editor.domain, or editor.<the host of publicURL> (what flowyard itself defaults to).
*/}}
{{- define "flowyard.editorDomain" -}}
{{- .Values.editor.domain | default (printf "editor.%s" (urlParse .Values.publicURL).hostname) | lower -}}
{{- end }}
