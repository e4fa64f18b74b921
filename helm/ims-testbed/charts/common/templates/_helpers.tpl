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

{{/*
A secret's value (dict "root" . "secret" <Secret name> "key" <key> "given" <the user's value>
"length" <n>): the user's value when given; else the one the Secret of the installed release
already holds (`lookup`), so an upgrade keeps it; else a new random one. `helm template` and
--dry-run cannot look up, so each of their renders draws a new value.
*/}}
{{- define "ims-testbed.secretValue" -}}
{{- if .given -}}
{{- .given -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- $data := dig "data" (dict) $existing -}}
{{- if index $data .key -}}
{{- index $data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The bearer token every mutating API call needs (API_TOKEN): the Secret <fullname>-api-token,
key api-token, rendered by the umbrella (templates/secrets.yaml).
*/}}
{{- define "ims-testbed.apiTokenSecret" -}}
{{- include "ims-testbed.name" (dict "root" . "component" "api-token") -}}
{{- end -}}

{{- define "ims-testbed.apiTokenEnv" -}}
- name: API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "ims-testbed.apiTokenSecret" . }}
      key: api-token
{{- end -}}

{{/*
SUBSCRIBER_PASSWORD_TEMPLATE, for the seeding (sip-controller, db-init) and the phones: the
Secret <fullname>-subscribers, rendered by the umbrella (templates/secrets.yaml).
*/}}
{{- define "ims-testbed.subscribersSecret" -}}
{{- include "ims-testbed.name" (dict "root" . "component" "subscribers") -}}
{{- end -}}

{{- define "ims-testbed.subscriberPasswordEnv" -}}
- name: SUBSCRIBER_PASSWORD_TEMPLATE
  valueFrom:
    secretKeyRef:
      name: {{ include "ims-testbed.subscribersSecret" . }}
      key: SUBSCRIBER_PASSWORD_TEMPLATE
{{- end -}}

{{/*
Annotations of a Secret that the pre-install schema Job reads (an external database: the Job
runs before the release's resources exist, so the Secret must be a hook before it). Empty with
the bundled MariaDB, whose Job runs after install.
*/}}
{{- define "ims-testbed.preInstallSecretAnnotations" -}}
{{- if include "ims-testbed.externalDatabase" . -}}
annotations:
  helm.sh/hook: pre-install,pre-upgrade
  helm.sh/hook-weight: "-10"
  helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}
{{- end -}}

{{/* a component's selector labels as a label selector string (k=v,k=v; keys sorted) */}}
{{- define "ims-testbed.selectorString" -}}
{{- $pairs := list -}}
{{- range $k, $v := include "ims-testbed.selectorLabels" . | fromYaml -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
