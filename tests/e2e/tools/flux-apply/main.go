// One reconciliation of a Flux Kustomization, the way kustomize-controller v1.9.4 applies it,
// for kfg's e2e tier.
//
// It follows internal/controller/kustomization_controller.go at fluxcd/kustomize-controller
// v1.9.4: the Kustomization object generates kustomization.yaml in a copy of the source
// (fluxcd/pkg/kustomize NewGenerator + WriteFile, then SecureBuild without remote bases), the
// build is read into objects (ssa/utils ReadObjects), normalized, labelled with the
// Kustomization's owner labels, and applied with fluxcd/pkg/ssa ApplyAllStaged under the
// field manager "kustomize-controller" with the controller's apply options (selectors on the
// kustomize.toolkit.fluxcd.io annotations, cleanup of kubectl's managers). It leaves out what
// needs a running Flux: sources, decryption, post-build substitution, health checks, pruning
// and the Kustomization's status.
//
// Usage: flux-apply -kustomization FILE -source DIR [-custom-stage-kinds group/Kind,...]
// Prints the change set as JSON lines {"subject": ..., "action": ...}; exits 1 on failure.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	generator "github.com/fluxcd/pkg/kustomize"
	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/normalize"
	ssautil "github.com/fluxcd/pkg/ssa/utils"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/yaml"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
)

// kustomize-controller v1.9.4 main.go: controllerName and the --concurrent-ssa default.
const (
	controllerName = "kustomize-controller"
	concurrentSSA  = 4
)

func main() {
	var kustomizationFile, source, customKinds string
	flag.StringVar(&kustomizationFile, "kustomization", "", "a Flux Kustomization (YAML)")
	flag.StringVar(&source, "source", "", "the source artifact's root directory")
	flag.StringVar(&customKinds, "custom-stage-kinds", "", "--custom-apply-stage-kinds: group/Kind,...")
	flag.Parse()
	if err := run(kustomizationFile, source, customKinds); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(kustomizationFile, source, customKinds string) error {
	ctx := context.Background()
	data, err := os.ReadFile(kustomizationFile)
	if err != nil {
		return err
	}
	obj := &kustomizev1.Kustomization{}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		return fmt.Errorf("%s: %w", kustomizationFile, err)
	}

	// The controller extracts the artifact into a temporary directory and builds there.
	tmpDir, err := os.MkdirTemp("", "kustomization-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	if err := os.CopyFS(tmpDir, os.DirFS(source)); err != nil {
		return err
	}
	dirPath, err := securejoin.SecureJoin(tmpDir, obj.Spec.Path)
	if err != nil {
		return err
	}
	k, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	if _, err := generator.NewGenerator(tmpDir, unstructured.Unstructured{Object: k}).WriteFile(dirPath); err != nil {
		return err
	}
	m, err := generator.SecureBuild(tmpDir, dirPath, false)
	if err != nil {
		return fmt.Errorf("kustomize build failed: %w", err)
	}
	resources, err := m.AsYaml()
	if err != nil {
		return fmt.Errorf("kustomize build failed: %w", err)
	}
	objects, err := ssautil.ReadObjects(bytes.NewReader(resources))
	if err != nil {
		return err
	}

	cfg, err := config.GetConfig()
	if err != nil {
		return err
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return err
	}
	kubeClient, err := client.New(cfg, client.Options{Mapper: mapper})
	if err != nil {
		return err
	}
	poller := polling.NewStatusPoller(kubeClient, mapper, polling.Options{})
	manager := ssa.NewResourceManager(kubeClient, poller, ssa.Owner{
		Field: controllerName,
		Group: kustomizev1.GroupVersion.Group,
	})
	manager.SetOwnerLabels(objects, obj.GetName(), obj.GetNamespace())
	manager.SetConcurrency(concurrentSSA)

	if err := normalize.UnstructuredList(objects); err != nil {
		return err
	}
	if cmeta := obj.Spec.CommonMetadata; cmeta != nil {
		ssautil.SetCommonMetadata(objects, cmeta.Labels, cmeta.Annotations)
	}
	applyOpts := ssa.DefaultApplyOptions()
	applyOpts.Force = obj.Spec.Force
	applyOpts.ExclusionSelector = map[string]string{
		fmt.Sprintf("%s/reconcile", kustomizev1.GroupVersion.Group): kustomizev1.DisabledValue,
		fmt.Sprintf("%s/ssa", kustomizev1.GroupVersion.Group):       kustomizev1.IgnoreValue,
	}
	applyOpts.IfNotPresentSelector = map[string]string{
		fmt.Sprintf("%s/ssa", kustomizev1.GroupVersion.Group): kustomizev1.IfNotPresentValue,
	}
	applyOpts.ForceSelector = map[string]string{
		fmt.Sprintf("%s/force", kustomizev1.GroupVersion.Group): kustomizev1.EnabledValue,
	}
	if customKinds != "" {
		kinds, err := ssautil.ParseGroupKindSet(customKinds)
		if err != nil {
			return err
		}
		applyOpts.CustomStageKinds = kinds
	}
	fieldManagers := []ssa.FieldManager{
		{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationApply},
		{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationUpdate},
		{Name: "before-first-apply", OperationType: metav1.ManagedFieldsOperationUpdate},
		{Name: controllerName, OperationType: metav1.ManagedFieldsOperationUpdate},
	}
	applyOpts.Cleanup = ssa.ApplyCleanupOptions{
		Annotations: []string{
			corev1.LastAppliedConfigAnnotation,
			"kustomize.toolkit.fluxcd.io/checksum",
			"fluxcd.io/sync-checksum",
		},
		Labels:        []string{"fluxcd.io/sync-gc-mark"},
		FieldManagers: fieldManagers,
		Exclusions: map[string]string{
			fmt.Sprintf("%s/ssa", kustomizev1.GroupVersion.Group): kustomizev1.MergeValue,
		},
	}

	changeSet, err := manager.ApplyAllStaged(ctx, objects, applyOpts)
	if changeSet != nil {
		out := json.NewEncoder(os.Stdout)
		for _, entry := range changeSet.Entries {
			if e := out.Encode(map[string]string{"subject": entry.Subject, "action": string(entry.Action)}); e != nil {
				return e
			}
		}
	}
	return err
}
