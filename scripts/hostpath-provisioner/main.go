// occam-hostpath-provisioner: the test cluster's dynamic provisioner (scripts/k8s-binaries.sh builds it).
//
// It is sig-storage-lib-external-provisioner's hostpath example, made a host process of the one-node test
// cluster: for each claim of a StorageClass naming it, a new directory under --root on this machine and a
// hostPath PersistentVolume on it, with the claim's access modes (ReadWriteMany included: every pod on the
// node mounts the same directory) and capacity, pinned to --node by node affinity. A deleted volume's
// directory is removed (reclaim policy Delete). Not for production: a directory has no size limit and is
// world-writable (hostPath volumes have no fsGroup), which is why only this test cluster runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v11/controller"
)

// identityAnnotation marks the volumes this process made, so that Delete leaves any other hostPath alone.
const identityAnnotation = "occam.test/hostpath-provisioner-root"

type hostPathProvisioner struct {
	root string
	node string
}

func (p *hostPathProvisioner) Provision(
	ctx context.Context, options controller.ProvisionOptions,
) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if options.PVC.Spec.VolumeMode != nil && *options.PVC.Spec.VolumeMode == v1.PersistentVolumeBlock {
		return nil, controller.ProvisioningFinished, errors.New("block volumes are not supported")
	}
	path := filepath.Join(p.root, options.PVName)
	if err := os.Mkdir(path, 0o777); err != nil && !os.IsExist(err) {
		return nil, controller.ProvisioningFinished, err
	}
	// Mkdir applies the umask; the pods' users are arbitrary (restricted pods run as non-root UIDs).
	if err := os.Chmod(path, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if options.StorageClass.ReclaimPolicy != nil {
		reclaim = *options.StorageClass.ReclaimPolicy
	}
	directory := v1.HostPathDirectory
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: options.PVName, Annotations: map[string]string{identityAnnotation: p.root}},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   options.PVC.Spec.AccessModes,
			MountOptions:                  options.StorageClass.MountOptions,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: options.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: path, Type: &directory},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{p.node},
				}},
			}}}},
		},
	}
	return pv, controller.ProvisioningFinished, nil
}

func (p *hostPathProvisioner) Delete(ctx context.Context, volume *v1.PersistentVolume) error {
	if volume.Annotations[identityAnnotation] != p.root || volume.Spec.HostPath == nil {
		return &controller.IgnoredError{Reason: "not made by this provisioner"}
	}
	path := volume.Spec.HostPath.Path
	if filepath.Dir(path) != p.root {
		return fmt.Errorf("volume %s: %s is not under %s", volume.Name, path, p.root)
	}
	return os.RemoveAll(path)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the provisioner's own identity")
	name := flag.String("provisioner-name", "occam.test/hostpath", "the StorageClasses' provisioner field")
	root := flag.String("root", "", "directory on this machine that holds one directory per volume")
	node := flag.String("node", "", "the node whose kubelet sees --root (volumes are pinned to it)")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *root == "" || *node == "" {
		klog.Fatal("--kubeconfig, --root and --node are required")
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		klog.Fatal(err)
	}
	if err := os.MkdirAll(absRoot, 0o711); err != nil {
		klog.Fatal(err)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	provisioner := &hostPathProvisioner{root: absRoot, node: *node}
	controller.NewProvisionController(ctx, client, *name, provisioner,
		controller.LeaderElection(false), controller.MetricsPort(0)).Run(ctx)
}
