{{- /*
  Values that the schema cannot judge alone: each failure says what to change. Included by
  hub-config.yaml, so that every render and install runs it.
*/}}
{{- define "occam.checks" -}}
{{- $occam := .Values.occam -}}
{{- $course := $occam.course -}}
{{- $maxCpu := include "occam.cores" ($course.executorMaxCpu | default "2") | float64 -}}
{{- $maxMemory := include "occam.bytes" ($course.executorMaxMemory | default "4Gi") | float64 -}}
{{- if gt $maxCpu (include "occam.cores" $course.cpu | float64) }}
{{- fail (printf "occam.course.executorMaxCpu=%v is more than the whole namespace's occam.course.cpu=%v: no executor that large could start. Lower executorMaxCpu or raise cpu." ($course.executorMaxCpu | default "2") $course.cpu) }}
{{- end }}
{{- if gt $maxMemory (include "occam.bytes" $course.memory | float64) }}
{{- fail (printf "occam.course.executorMaxMemory=%v is more than the whole namespace's occam.course.memory=%v: no executor that large could start. Lower executorMaxMemory or raise memory." ($course.executorMaxMemory | default "4Gi") $course.memory) }}
{{- end }}
{{- /* Z2JH's home volume claim is made in the student's namespace, so the course's claim storage must hold it. */}}
{{- $z2jh := .Values.jupyterhub | default dict -}}
{{- $home := dig "singleuser" "storage" "capacity" "10Gi" $z2jh -}}
{{- if and (eq (dig "singleuser" "storage" "type" "dynamic" $z2jh) "dynamic") (gt (include "occam.bytes" $home | float64) (include "occam.bytes" ($course.storage | default "20Gi") | float64)) }}
{{- fail (printf "jupyterhub.singleuser.storage.capacity=%v is more than occam.course.storage=%v: each student's home volume claim is made in their namespace, whose quota would refuse it. Raise occam.course.storage or lower the capacity." $home ($course.storage | default "20Gi")) }}
{{- end }}
{{- $slugs := dict -}}
{{- $defaults := list -}}
{{- range $i, $p := $occam.profiles }}
{{- $where := printf "occam.profiles[%d] (%s)" $i $p.slug -}}
{{- if hasKey $slugs $p.slug }}
{{- fail (printf "%s: slug %q is used by another profile too; give each profile its own slug." $where $p.slug) }}
{{- end }}
{{- $_ := set $slugs $p.slug true -}}
{{- if $p.default }}{{ $defaults = append $defaults $p.slug }}{{ end }}
{{- $gpus := $p.gpus | default 0 | int -}}
{{- if not (index $occam.images $p.image) }}
{{- fail (printf "%s uses image %q, but occam.images.%s is not set: add it (name and tag) or pick image: notebook." $where $p.image $p.image) }}
{{- end }}
{{- $quota := (hasKey $p "gpuQuota") | ternary $p.gpuQuota $gpus | int -}}
{{- if and (eq $p.image "gpuNotebook") (eq $gpus 0) (eq $quota 0) }}
{{- fail (printf "%s runs the GPU image but sets no GPU count: set gpus to the notebook's GPUs (e.g. gpus: 1) and gpuQuota to the GPUs one student may use in all, or use image: notebook for a CPU profile." $where) }}
{{- end }}
{{- if and (gt $gpus 0) (ne $p.image "gpuNotebook") (not $p.executorImage) }}
{{- fail (printf "%s gives the notebook %d GPU(s) but runs the CPU image: set image: gpuNotebook (or executorImage to a GPU image)." $where $gpus) }}
{{- end }}
{{- if lt $quota $gpus }}
{{- fail (printf "%s: gpuQuota=%d is less than the notebook's gpus=%d; the namespace's quota would refuse the notebook pod. Set gpuQuota to the notebook's GPUs plus those of the executors." $where $quota $gpus) }}
{{- end }}
{{- /* A CPU notebook may borrow GPUs for its executors (gpus 0, gpuQuota > 0): the namespace's quota still caps them. */}}
{{- if and (eq $quota 0) (or $p.nodeSelector $p.tolerations) }}
{{- fail (printf "%s sets nodeSelector or tolerations but neither gpus nor gpuQuota: those place GPU pods. Set gpus (the notebook's GPUs) or gpuQuota (GPUs its executors may borrow), or remove them." $where) }}
{{- end }}
{{- if and (gt $quota 0) (not (index $occam.images "gpuNotebook")) }}
{{- fail (printf "%s has a GPU quota, but occam.images.gpuNotebook is not set: GPU executors run that image. Set it (name and tag)." $where) }}
{{- end }}
{{- $cap := $course.maxGpusInUse | default 0 | int -}}
{{- if and (gt $cap 0) (gt $gpus $cap) }}
{{- fail (printf "%s: the notebook's gpus=%d is more than the course-wide occam.course.maxGpusInUse=%d: no such notebook could ever start. Lower gpus or raise maxGpusInUse." $where $gpus $cap) }}
{{- end }}
{{- $cpu := $p.notebook.cpu | float64 -}}
{{- $memory := include "occam.bytes" $p.notebook.memory | float64 -}}
{{- if gt $cpu $maxCpu }}
{{- fail (printf "%s: notebook.cpu=%v is more than occam.course.executorMaxCpu=%v, the most one container may have in a student's namespace: the notebook pod would be refused. Lower notebook.cpu or raise executorMaxCpu." $where $p.notebook.cpu ($course.executorMaxCpu | default "2")) }}
{{- end }}
{{- if gt $memory $maxMemory }}
{{- fail (printf "%s: notebook.memory=%v is more than occam.course.executorMaxMemory=%v, the most one container may have in a student's namespace: the notebook pod would be refused. Lower notebook.memory or raise executorMaxMemory." $where $p.notebook.memory ($course.executorMaxMemory | default "4Gi")) }}
{{- end }}
{{- end }}
{{- if gt (len $defaults) 1 }}
{{- fail (printf "occam.profiles: %s are all marked default: true; mark one at most." (join ", " $defaults)) }}
{{- end }}
{{- $shared := $occam.sharedData -}}
{{- if and $shared.enabled (ne (len ($shared.volume | default dict)) 1) }}
{{- fail "occam.sharedData.enabled is true but occam.sharedData.volume names no volume source: set exactly one of nfs: {server, path}, persistentVolumeClaim: {claimName} (a claim of that name in every student namespace) or csi: {driver, ...}." }}
{{- end }}
{{- if and $shared.enabled (not $shared.mountPath) }}
{{- fail "occam.sharedData.enabled is true but occam.sharedData.mountPath is empty: set where notebooks see the data, e.g. /home/jovyan/shared." }}
{{- end }}
{{- $work := $occam.sharedWork | default dict -}}
{{- if and $work.enabled (not $work.storageClass) (ne (len ($work.volume | default dict)) 1) }}
{{- fail "occam.sharedWork (each student's work volume: dataset cache, checkpoints; on by default) needs a ReadWriteMany StorageClass: set occam.sharedWork.storageClass to one (kubectl get storageclass; NFS with a provisioner, CephFS, a cloud file store), and the spawner makes each student's own claim occam-work from it. Or name a volume yourself in occam.sharedWork.volume (exactly one of persistentVolumeClaim: {claimName}, a ReadWriteMany claim in every student namespace; nfs: {server, path}; csi: {driver, ...}). Or turn it off knowingly with occam.sharedWork.enabled=false: Dataset.from_* and fit on Kubernetes then fail asking for it (docs/admin-guide.md, Shared work volume)." }}
{{- end }}
{{- if and $work.enabled $work.storageClass }}
{{- $homeBytes := 0.0 -}}
{{- if eq (dig "singleuser" "storage" "type" "dynamic" $z2jh) "dynamic" }}{{ $homeBytes = include "occam.bytes" $home | float64 }}{{ end -}}
{{- if gt (addf $homeBytes (include "occam.bytes" ($work.size | default "10Gi") | float64)) (include "occam.bytes" ($course.storage | default "20Gi") | float64) }}
{{- fail (printf "occam.sharedWork.size=%v and the home volume (%v) are more than occam.course.storage=%v: both claims are made in the student's namespace, whose quota would refuse the second. Raise occam.course.storage or lower the sizes." ($work.size | default "10Gi") $home ($course.storage | default "20Gi")) }}
{{- end }}
{{- end }}
{{- if and $work.enabled (not $work.mountPath) }}
{{- fail "occam.sharedWork.enabled is true but occam.sharedWork.mountPath is empty: set where notebooks and executors mount it, e.g. /home/jovyan/occam-work." }}
{{- end }}
{{- $catalog := $occam.catalog | default dict -}}
{{- if and $catalog.enabled (ne (len ($catalog.volume | default dict)) 1) }}
{{- fail "occam.catalog.enabled is true but occam.catalog.volume names no volume source: set exactly one of csi: {driver, volumeAttributes}, nfs: {server, path} or persistentVolumeClaim: {claimName} (a claim of that name in every student namespace), the catalog exported READ-ONLY to the students' nodes (docs/admin-guide.md, Course catalog)." }}
{{- end }}
{{- if and $catalog.enabled (ne (len (dig "service" "volume" dict $catalog)) 1) }}
{{- fail "occam.catalog.enabled is true but occam.catalog.service.volume names no volume source: the catalog service needs the same filesystem read-write in the release's namespace, e.g. persistentVolumeClaim: {claimName: occam-catalog} or nfs: {server, path} (docs/admin-guide.md, Course catalog)." }}
{{- end }}
{{- if and $catalog.enabled (not $catalog.mountPath) }}
{{- fail "occam.catalog.enabled is true but occam.catalog.mountPath is empty: set where notebooks see it, e.g. /home/jovyan/occam-catalog." }}
{{- end }}
{{- /* Pod Security's restricted level refuses pods with other inline volumes (nfs, hostPath...). */}}
{{- if eq (dig "spawner" "podSecurityLevel" "restricted" $occam) "restricted" }}
{{- $allowed := list "configMap" "csi" "downwardAPI" "emptyDir" "ephemeral" "persistentVolumeClaim" "projected" "secret" }}
{{- range $name, $v := dict "occam.sharedData" $shared "occam.sharedWork" $work "occam.catalog" ($occam.catalog | default dict) }}
{{- if $v.enabled }}
{{- range $kind, $_ := ($v.volume | default dict) }}
{{- if not (has $kind $allowed) }}
{{- fail (printf "%s.volume is a %s volume, which Pod Security's restricted level (enforced in every student namespace) refuses in pods: use a persistentVolumeClaim (a PersistentVolume of that export bound in each namespace) or a csi volume, or set occam.spawner.podSecurityLevel: baseline (docs/security.md)." $name $kind) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $z2jh := .Values.jupyterhub -}}
{{- if $z2jh.enabled }}
{{- include "occam.checkZ2jh" . }}
{{- end }}
{{- end }}

{{- /* The jupyterhub values that Occam relies on (values.yaml sets them; an override must keep them). */}}
{{- define "occam.checkZ2jh" -}}
{{- $hub := .Values.jupyterhub.hub | default dict -}}
{{- $name := include "occam.hubConfigName" . -}}
{{- $dir := include "occam.hubConfigDir" . -}}
{{- $volume := false -}}
{{- range $hub.extraVolumes | default list }}
{{- if and .configMap (eq (.configMap.name | default "") $name) }}{{ $volume = .name }}{{ end }}
{{- end }}
{{- if not $volume }}
{{- fail (printf "jupyterhub.hub.extraVolumes has no volume of the ConfigMap %s (Occam's hub config). Helm replaces lists: when you set hub.extraVolumes, keep the entry {name: %s, configMap: {name: %s}} from the chart's values.yaml." $name $name $name) }}
{{- end }}
{{- $mounted := false -}}
{{- range $hub.extraVolumeMounts | default list }}
{{- if and (eq .name $volume) (eq (trimSuffix "/" .mountPath) $dir) }}{{ $mounted = true }}{{ end }}
{{- end }}
{{- if not $mounted }}
{{- fail (printf "jupyterhub.hub.extraVolumeMounts does not mount volume %s at %s, where Z2JH loads extra hub config: keep the entry {name: %s, mountPath: %s, readOnly: true} from the chart's values.yaml." $volume $dir $volume $dir) }}
{{- end }}
{{- if not ($hub.serviceAccount | default dict).name }}
{{- fail "jupyterhub.hub.serviceAccount.name is empty: Occam's ClusterRoleBinding must name the hub's ServiceAccount. Set it (values.yaml: occam-hub)." }}
{{- end }}
{{- $spawner := dig "config" "JupyterHub" "spawner_class" "occam" $hub -}}
{{- if ne $spawner "occam" }}
{{- fail (printf "jupyterhub.hub.config.JupyterHub.spawner_class is %q: Occam needs its spawner, \"occam\" (OccamSpawner). Remove the setting or set it to occam." $spawner) }}
{{- end }}
{{- if (dig "singleuser" "profileList" list .Values.jupyterhub) }}
{{- fail "jupyterhub.singleuser.profileList is set: Occam builds the profiles from occam.profiles (with each profile's quota and GPU placement). Move your profiles there and leave profileList empty." }}
{{- end }}
{{- if .Values.jupyterhub.enabled }}
{{- $auth := dig "hub" "config" "JupyterHub" "authenticator_class" "dummy" .Values.jupyterhub | toString -}}
{{- if and (has $auth (list "dummy" "null" "jupyterhub.auth.DummyAuthenticator" "")) (not .Values.occam.insecureAllowAnyLogin) }}
{{- fail (printf "jupyterhub.hub.config.JupyterHub.authenticator_class is %q: with it anyone who reaches the hub logs in as any student. Set an authenticator (e.g. generic-oauth for your university's OIDC, github; docs/admin-guide.md, Authentication), or, for a throwaway test install only, occam.insecureAllowAnyLogin: true." $auth) }}
{{- end }}
{{- end }}
{{- end }}
