{{/* The embedded MQTT broker of the API pods: settings, ports and the TLS volume (see mqtt.yaml). */}}

{{- define "flowyard.mqtt.tlsByFlowyard" -}}
{{- if and .Values.mqtt.tcp.enabled (eq .Values.mqtt.tcp.tls.terminatedBy "flowyard") }}true{{ end -}}
{{- end -}}

{{/* publicURL: the broker URL handed to devices, "none" when no broker is exposed. */}}
{{- define "flowyard.mqtt.publicURL" -}}
{{- $m := .Values.mqtt -}}
{{- if $m.publicURL -}}
{{- $m.publicURL -}}
{{- else if $m.tcp.enabled -}}
{{- $port := $m.tcp.service.port -}}
{{- if eq $m.tcp.service.type "NodePort" -}}
{{- $port = required "mqtt.tcp.service.nodePort (or mqtt.publicURL) is needed with a NodePort Service: it is the port devices connect to" $m.tcp.service.nodePort -}}
{{- end -}}
{{- printf "%s://%s:%v" (ternary "mqtt" "mqtts" (eq $m.tcp.tls.terminatedBy "none")) (required "mqtt.tcp.host (the name devices connect to) or mqtt.publicURL is needed with mqtt.tcp.enabled" $m.tcp.host) (int $port) -}}
{{- else if $m.websocket.enabled -}}
{{- printf "%s://%s" (ternary "wss" "ws" (or (ne $m.websocket.tlsSecretName "") (hasPrefix "https://" .Values.publicURL))) $m.websocket.host -}}
{{- else -}}
none
{{- end -}}
{{- end -}}

{{/* config: the broker's entries of the ConfigMap. A listener nothing exposes stays on the pod's loopback. */}}
{{- define "flowyard.mqtt.config" -}}
FLOWYARD_MQTT_LISTEN: {{ printf "%s:%d" (ternary "0.0.0.0" "127.0.0.1" .Values.mqtt.tcp.enabled) (int .Values.mqtt.port) | quote }}
FLOWYARD_MQTT_WS_LISTEN: {{ printf "%s:%d" (ternary "0.0.0.0" "127.0.0.1" .Values.mqtt.websocket.enabled) (int .Values.mqtt.wsPort) | quote }}
FLOWYARD_MQTT_PUBLIC_URL: {{ include "flowyard.mqtt.publicURL" . | quote }}
{{- if include "flowyard.mqtt.tlsByFlowyard" . }}
FLOWYARD_MQTT_TLS_CERT: /etc/flowyard/mqtt-tls/tls.crt
FLOWYARD_MQTT_TLS_KEY: /etc/flowyard/mqtt-tls/tls.key
{{- end }}
{{- end -}}

{{- define "flowyard.mqtt.ports" -}}
{{- if .Values.mqtt.tcp.enabled }}
- name: mqtt
  containerPort: {{ .Values.mqtt.port }}
{{- end }}
{{- if .Values.mqtt.websocket.enabled }}
- name: mqtt-ws
  containerPort: {{ .Values.mqtt.wsPort }}
{{- end }}
{{- end -}}

{{/* The TLS Secret is a directory mount (not subPath), so a renewed certificate reaches the running pods. */}}
{{- define "flowyard.mqtt.volumeMounts" -}}
{{- if include "flowyard.mqtt.tlsByFlowyard" . }}
- name: mqtt-tls
  mountPath: /etc/flowyard/mqtt-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "flowyard.mqtt.volumes" -}}
{{- if include "flowyard.mqtt.tlsByFlowyard" . }}
- name: mqtt-tls
  secret:
    secretName: {{ required "mqtt.tcp.tls.existingSecret (a Secret with tls.crt and tls.key) is needed when flowyard terminates MQTT's TLS" .Values.mqtt.tcp.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}
