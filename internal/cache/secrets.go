package cache

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// SecretMetadata is the type of the metadata-only Secret watch and of its
// cache entry. The watch wakes attachments whose ControllerPublish Secret
// appears or changes; Secret data never enters the process through it (the
// attach path reads the Secret with a direct GET).
func SecretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// TrimSecret returns the cache transform for Secrets: name, namespace, UID
// and resourceVersion are all the watch needs. Everything else goes, labels
// and annotations included: an annotation such as kubectl's
// last-applied-configuration can hold the whole Secret, data and all.
func TrimSecret() toolscache.TransformFunc {
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case *metav1.PartialObjectMetadata:
			return &metav1.PartialObjectMetadata{TypeMeta: o.TypeMeta, ObjectMeta: secretIdentity(o.ObjectMeta)}, nil
		case *corev1.Secret:
			// The attacher never caches whole Secrets; should anything
			// start a typed informer, it holds no data either.
			return &corev1.Secret{TypeMeta: o.TypeMeta, ObjectMeta: secretIdentity(o.ObjectMeta)}, nil
		default:
			return stripManagedFields(obj)
		}
	}
}

func secretIdentity(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}
}
