{{/* The name of every object: fixed by the product's contract. */}}
{{- define "psr.name" -}}pullsecret-reconciler{{- end -}}

{{/* Helm's convention: the namespaced objects go where the release does (helm install -n NS
--create-namespace); the chart never creates or owns that namespace. */}}
{{- define "psr.namespace" -}}{{ .Release.Namespace }}{{- end -}}

{{/* Labels: the kustomize base's, plus Helm's own. */}}
{{- define "psr.labels" -}}
app.kubernetes.io/name: {{ include "psr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* A config value, trimmed; "" when unset (a --set false is the string "false", not unset). */}}
{{- define "psr.config" -}}
{{- $v := index .root.Values.config .key -}}
{{- if not (kindIs "invalid" $v) -}}{{- trim (toString $v) -}}{{- end -}}
{{- end -}}

{{/*
The Secret names as the tool derives them, as a JSON list: "sources" (read in the tool's
namespace) or "targets" (written everywhere). PULLSECRET_SOURCE_SECRETS entries are `name` or
`source=target`; without it the target is PULLSECRET_SECRET_NAME (default image-pull-secret) and
there is no source Secret.
*/}}
{{- define "psr.secretNames" -}}
{{- $list := include "psr.config" (dict "root" .root "key" "PULLSECRET_SOURCE_SECRETS") -}}
{{- $out := list -}}
{{- if $list -}}
{{- range splitList "," $list -}}
{{- $entry := trim . -}}
{{- if $entry -}}
{{- $parts := splitList "=" $entry -}}
{{- if eq $.which "sources" -}}
{{- $out = append $out (trim (first $parts)) -}}
{{- else -}}
{{- $out = append $out (trim (last $parts)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- else if eq .which "targets" -}}
{{- $out = append $out (include "psr.config" (dict "root" .root "key" "PULLSECRET_SECRET_NAME") | default "image-pull-secret") -}}
{{- end -}}
{{- if eq .which "targets" -}}
{{- $out = concat $out .root.Values.rbac.extraSecretNames -}}
{{- end -}}
{{- $out | uniq | toJson -}}
{{- end -}}
