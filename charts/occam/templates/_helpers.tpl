{{- /* Names and labels of Occam's own objects. */}}

{{- /* The ConfigMap with the hub's Occam config; jupyterhub.hub.extraVolumes names it (values.yaml). */}}
{{- define "occam.hubConfigName" -}}occam-hub-config{{- end }}

{{- /* Z2JH runs the *.py files of this directory after its own hub config. */}}
{{- define "occam.hubConfigDir" -}}/usr/local/etc/jupyterhub/jupyterhub_config.d{{- end }}

{{- /* The hub's ClusterRole and ClusterRoleBinding: cluster-scoped, so named after the release and its namespace. */}}
{{- define "occam.hubClusterRoleName" -}}
{{- printf "occam-hub-%s-%s" .Release.Namespace .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /* The notebook's ClusterRole and the hub's in-namespace one, which the spawner binds per student namespace. */}}
{{- define "occam.notebookClusterRoleName" -}}
{{- printf "occam-notebook-%s-%s" .Release.Namespace .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "occam.hubNamespaceRoleName" -}}
{{- printf "occam-hub-ns-%s-%s" .Release.Namespace .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "occam.labels" -}}
app.kubernetes.io/name: occam
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}

{{- /* The labels of Z2JH's hub and proxy pods: what may reach a student's notebook (its NetworkPolicy). */}}
{{- define "occam.hubSelector" -}}
{{- $z2jh := .Values.jupyterhub | default dict -}}
{{- dict "app" ($z2jh.nameOverride | default "jupyterhub" | trunc 63 | trimSuffix "-") "release" .Release.Name | toJson }}
{{- end }}

{{- /* What files/occam_config.py reads: the occam values and what only the templates know. */}}
{{- define "occam.hubValues" -}}
{{- $values := deepCopy .Values.occam -}}
{{- $_ := set $values "hubNamespace" .Release.Namespace -}}
{{- $_ := set $values "hubSelector" (include "occam.hubSelector" . | fromJson) -}}
{{- $_ := set $values "notebookClusterRole" (include "occam.notebookClusterRoleName" .) -}}
{{- $_ := set $values "hubNamespaceRole" (include "occam.hubNamespaceRoleName" .) -}}
{{- $network := deepCopy ($values.network | default dict) -}}
{{- $_ := set $network "apiServerCIDRs" (include "occam.apiServerCIDRs" . | fromJson).cidrs -}}
{{- $_ := set $values "network" $network -}}
{{- $spawner := $values.spawner | default dict -}}
{{- $_ := set $spawner "namespacePrefix" ($spawner.namespacePrefix | default "occam-") -}}
{{- $_ := set $spawner "namespacePrepareTimeout" ($spawner.namespacePrepareTimeout | default 120) -}}
{{- if not (hasKey $spawner "checkNodeFit") }}{{ $_ := set $spawner "checkNodeFit" true }}{{ end -}}
{{- $_ := set $values "spawner" $spawner -}}
{{- $values | toPrettyJson }}
{{- end }}

{{- /* occam.network.apiServerCIDRs, or else the API server's addresses read at install from the kubernetes
  Service's EndpointSlice (or Endpoints) in default, each as a /32 (/128); {"cidrs": []} where neither can be
  read (helm template without a cluster): the spawner then lets notebooks reach the API server's ports on any
  address (spawner.network_policy, NOTES.txt warns). */}}
{{- define "occam.apiServerCIDRs" -}}
{{- $cidrs := list -}}
{{- range (dig "network" "apiServerCIDRs" list .Values.occam) }}{{ $cidrs = append $cidrs . }}{{ end -}}
{{- if not $cidrs -}}
{{- $slice := lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "kubernetes" | default dict -}}
{{- range ($slice.endpoints | default list) -}}
{{- range (.addresses | default list) -}}
{{- $cidrs = append $cidrs (printf "%s/%s" . (ternary "128" "32" (contains ":" .))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $cidrs -}}
{{- $endpoints := lookup "v1" "Endpoints" "default" "kubernetes" | default dict -}}
{{- range ($endpoints.subsets | default list) -}}
{{- range (.addresses | default list) -}}
{{- $cidrs = append $cidrs (printf "%s/%s" .ip (ternary "128" "32" (contains ":" .ip))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- dict "cidrs" ($cidrs | uniq) | toJson -}}
{{- end }}

{{- /* A Kubernetes CPU quantity ("2", "1.5", "500m") as a number of cores. */}}
{{- define "occam.cores" -}}
{{- $q := toString . -}}
{{- if hasSuffix "m" $q }}{{ divf (float64 (trimSuffix "m" $q)) 1000 }}{{ else }}{{ float64 $q }}{{ end }}
{{- end }}

{{- /* A Kubernetes memory quantity ("4Gi", "512Mi", "1G", "1000") as bytes. */}}
{{- define "occam.bytes" -}}
{{- $q := toString . -}}
{{- $number := regexFind "^[0-9.]+" $q -}}
{{- $unit := trimPrefix $number $q -}}
{{- $scale := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 -}}
{{- mulf (float64 $number) (get $scale $unit) }}
{{- end }}
