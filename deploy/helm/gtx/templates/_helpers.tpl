{{- define "gtx.labels" -}}
app.kubernetes.io/name: gtx-tc
app.kubernetes.io/part-of: gtx
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "gtx.selector" -}}
app.kubernetes.io/name: gtx-tc
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "gtx.config" -}}
listen: 0.0.0.0:8091
health_listen: 0.0.0.0:8092
metrics_listen: 0.0.0.0:9091
store_driver: {{ .Values.store.driver }}
node_id: -1
tls_cert: /etc/gtx/tls/tls.crt
tls_key: /etc/gtx/tls/tls.key
auth_tokens_file: /etc/gtx/secrets/tokens.yaml
{{ toYaml .Values.settings }}
{{- end -}}
