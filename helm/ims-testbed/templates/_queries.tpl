{{/*
The policy controller's PromQL, rendered from the very rules the HPA's prometheus-adapter and
KEDA read (prometheusAdapter.rules, keda.triggers): the adapter's <<.Series>>,
<<.LabelMatchers>> and <<.GroupBy>> filled in as the adapter fills them, for the release's
namespace and grouped by pod. Local mode renders the same text from the same values
(testbed.local.rules.ChartQueries.namespace_query); tests/unit compares the two.
*/}}

{{/* (dict "root" . "rules" <list> "metric" <name.as> "matchers" "a=\"b\",..." "groupBy" "pod") */}}
{{- define "ims-testbed.adapterQuery" -}}
{{- $found := dict -}}
{{- range .rules -}}
{{- if eq (toString .name.as) $.metric -}}
{{- $found = . -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "prometheusAdapter.rules: no rule serves %s (the policy controller reads it)" .metric) -}}
{{- end -}}
{{- $series := regexFind "^[A-Za-z_:][A-Za-z0-9_:]*" (tpl $found.seriesQuery .root) -}}
{{- tpl $found.metricsQuery .root | replace "<<.Series>>" $series | replace "<<.LabelMatchers>>" .matchers | replace "<<.GroupBy>>" .groupBy -}}
{{- end -}}

{{/* KEDA's trigger query that reads `series` (the pool's p99) */}}
{{- define "ims-testbed.kedaQuery" -}}
{{- $found := list -}}
{{- range .root.Values.keda.triggers -}}
{{- if contains $.series (toString .metadata.query) -}}
{{- $found = append $found .metadata.query -}}
{{- end -}}
{{- end -}}
{{- if ne (len $found) 1 -}}
{{- fail (printf "keda.triggers: %d queries read %s (the policy controller reads one)" (len $found) .series) -}}
{{- end -}}
{{- tpl (first $found) .root -}}
{{- end -}}

{{/* a Prometheus duration (30s, 1m, 1m30s, 500ms) in seconds */}}
{{- define "ims-testbed.seconds" -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9.]+(ms|h|m|s)" (toString .) -1 -}}
{{- $n := float64 (regexFind "^[0-9.]+" .) -}}
{{- $unit := regexFind "(ms|h|m|s)$" . -}}
{{- $factor := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0) $unit -}}
{{- $total = addf $total (mulf $n $factor) -}}
{{- end -}}
{{- $total -}}
{{- end -}}
