{{/*
Helpers every ims-testbed chart shares. Each takes either the chart's top context (.) or a
dict with "root" (that context) and "component". Everything they read lives under .Values.global,
which the umbrella sets once for all its subcharts (each subchart's values.yaml repeats the
defaults it reads, so it renders alone).
*/}}

{{/* Resource names are <fullname>-<component>; fullname is the release name by default. */}}
{{- define "ims-testbed.fullname" -}}
{{- default .Release.Name .Values.global.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "ims-testbed.name" -}}
{{- printf "%s-%s" (include "ims-testbed.fullname" .root) .component -}}
{{- end -}}

{{/* A Service's fully qualified name: <fullname>-<component>.<namespace>.svc.<domain> */}}
{{- define "ims-testbed.fqdn" -}}
{{- printf "%s.%s.svc.%s" (include "ims-testbed.name" .) .root.Release.Namespace .root.Values.global.clusterDomain -}}
{{- end -}}

{{- define "ims-testbed.selectorLabels" -}}
app.kubernetes.io/name: ims-testbed
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* helm.sh/chart names the chart that renders the object: a subchart, with its service's version */}}
{{- define "ims-testbed.labels" -}}
{{ include "ims-testbed.selectorLabels" . }}
app.kubernetes.io/part-of: ims-testbed
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/*
An image reference from (dict "root" . "image" {registry?, repository, tag}):
<registry>/<repository>:<tag>, the registry being global.imageRegistry unless the image names
its own ("" for none, e.g. Docker Hub's mariadb), so one setting points every project image
at a local build.
*/}}
{{- define "ims-testbed.image" -}}
{{- $registry := .root.Values.global.imageRegistry -}}
{{- if hasKey .image "registry" -}}
{{- $registry = .image.registry -}}
{{- end -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) .image.repository (toString .image.tag) -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (toString .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* env entries from a map of NAME: value, leaving out the names in .skip (set by the chart) */}}
{{- define "ims-testbed.env" -}}
{{- $skip := .skip }}
{{- range $name, $value := .env }}
{{- if not (has $name $skip) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* the Secret holding DATABASE_URL: the user's, or the one the database chart renders */}}
{{- define "ims-testbed.databaseSecret" -}}
{{- if .Values.global.database.existingSecret -}}
{{- .Values.global.database.existingSecret -}}
{{- else -}}
{{- include "ims-testbed.name" (dict "root" . "component" "database") -}}
{{- end -}}
{{- end -}}

{{- define "ims-testbed.databaseUrlEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ims-testbed.databaseSecret" . }}
      key: DATABASE_URL
{{- end -}}

{{/* "true" when the database is not the bundled MariaDB (it exists before the release) */}}
{{- define "ims-testbed.externalDatabase" -}}
{{- if or .Values.global.database.url .Values.global.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "ims-testbed.controllerUrl" -}}
{{- printf "http://%s:%v" (include "ims-testbed.fqdn" (dict "root" . "component" "sip-controller")) .Values.global.sipController.port -}}
{{- end -}}

{{/* the init container that waits until the schema Kamailio checks at start-up exists */}}
{{- define "ims-testbed.waitForSchema" -}}
- name: wait-for-schema
  image: {{ include "ims-testbed.image" (dict "root" . "image" .Values.global.sipController.image) }}
  imagePullPolicy: {{ .Values.global.imagePullPolicy }}
  command: ["testbed-db-init", "--mode", "check", "--timeout", {{ .Values.global.database.timeoutSeconds | quote }}]
  env:
    {{- include "ims-testbed.databaseUrlEnv" . | nindent 4 }}
  securityContext:
    {{- toYaml .Values.global.containerSecurityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 64Mi}
    limits: {memory: 256Mi}
{{- end -}}

{{- define "ims-testbed.podCommon" -}}
securityContext:
  {{- toYaml .root.Values.global.podSecurityContext | nindent 2 }}
{{- with .root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (merge (dict) (.nodeSelector | default dict) .root.Values.global.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (concat (.tolerations | default list) .root.Values.global.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
LOADBALANCER_RPC_URLS: one URL per load balancer pod the controller must reload. The
sip-controller and sip-loadb charts both call it, so a bad global.sipLoadb fails either way.
*/}}
{{- define "ims-testbed.loadbalancerRpcUrls" -}}
{{- $lb := dict "root" . "component" "sip-loadb" -}}
{{- $g := .Values.global.sipLoadb -}}
{{- if eq $g.workload "StatefulSet" -}}
{{- $urls := list -}}
{{- $headless := include "ims-testbed.fqdn" (dict "root" . "component" "sip-loadb-pods") -}}
{{- range $i := until (int $g.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s:%v/RPC" (include "ims-testbed.name" $lb) $i $headless $g.httpPort) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else if eq $g.workload "Deployment" -}}
{{- if ne (int $g.replicas) 1 -}}
{{- fail "global.sipLoadb: a Deployment is reached through its Service, so the sip-controller could reload only one of its replicas; keep replicas 1 or use workload StatefulSet" -}}
{{- end -}}
{{- printf "http://%s:%v/RPC" (include "ims-testbed.fqdn" $lb) $g.httpPort -}}
{{- else -}}
{{- fail "global.sipLoadb.workload must be Deployment or StatefulSet" -}}
{{- end -}}
{{- end -}}
