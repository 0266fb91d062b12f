//! Rendering a package's Kubernetes functions, and the strict round trip:
//! every rendered manifest parses back into its type and serializes to the
//! same tree (a field the types do not know would be lost, and differ).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use oprc_deploy::{Manifest, RenderError, Target, knative, render, to_yaml};
use serde_json::{Value, json};

const PACKAGE: &str = r#"
name: shop
functions:
  - name: Resize_Image
    provision:
      knative:
        image: registry.example/resize:1
        minScale: 1
        maxScale: 8
        concurrency: 4
        targetConcurrency: 3
        scaleDownDelay: 90s
        requestsCpu: "500m"
        limitsMemory: 256Mi
        env: {MODE: fast}
        apiPath: /invoke
        port: 9000
  - name: report
    provision:
      deployment:
        image: registry.example/report:2
        replicas: 3
        pullPolicy: IfNotPresent
  - name: local
    provision:
      process:
        command: python3 local.py
  - name: remote
    provision:
      http:
        url: http://elsewhere:8080
"#;

fn rendered(namespace: Option<&str>) -> Vec<oprc_deploy::Rendered> {
    let doc = oprc_package::parse(PACKAGE).expect("a valid package");
    let target = Target {
        namespace: namespace.map(str::to_owned),
    };
    render(doc.package(), &target).unwrap()
}

fn tree<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn only_kubernetes_functions_render_with_their_settings() {
    let r = rendered(Some("fns"));
    let functions: Vec<&str> = r.iter().map(|r| r.function.as_str()).collect();
    assert_eq!(functions, ["shop.Resize_Image", "shop.report"]);
    assert_eq!(
        r[0].url,
        "http://shop-resize-image.fns.svc.cluster.local/invoke"
    );
    assert_eq!(r[1].url, "http://shop-report.fns.svc.cluster.local");

    let Manifest::Knative(k) = &r[0].manifests[0] else {
        panic!("a knative service first")
    };
    let k = tree(k);
    assert_eq!(k["apiVersion"], "serving.knative.dev/v1");
    assert_eq!(k["kind"], "Service");
    assert_eq!(k["metadata"]["name"], "shop-resize-image");
    assert_eq!(k["metadata"]["namespace"], "fns");
    let template = &k["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["autoscaling.knative.dev/min-scale"], "1");
    assert_eq!(annotations["autoscaling.knative.dev/max-scale"], "8");
    assert_eq!(annotations["autoscaling.knative.dev/target"], "3");
    assert_eq!(
        annotations["autoscaling.knative.dev/scale-down-delay"],
        "90s"
    );
    assert_eq!(template["spec"]["containerConcurrency"], 4);
    let c = &template["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/resize:1");
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 9000, "name": "http1"}])
    );
    assert_eq!(
        c["env"],
        json!([{"name": "PORT", "value": "9000"}, {"name": "MODE", "value": "fast"}])
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "500m"}, "limits": {"memory": "256Mi"}})
    );

    let (Manifest::Deployment(d), Manifest::Service(s)) = (&r[1].manifests[0], &r[1].manifests[1])
    else {
        panic!("a deployment and its service")
    };
    let (d, s) = (tree(d), tree(s));
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    let selector = &d["spec"]["selector"]["matchLabels"];
    let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "the selector matches the pods");
    }
    assert_eq!(s["spec"]["selector"], *selector);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(
        s["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": 8080}])
    );
}

#[test]
fn the_yaml_round_trips_strictly_through_the_types() {
    let yaml = to_yaml(&rendered(None)).unwrap();
    assert!(
        yaml.contains("# function shop.report: http://shop-report.NAMESPACE.svc.cluster.local")
    );
    let docs: Vec<&str> = yaml
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .collect();
    assert_eq!(docs.len(), 3);
    for doc in docs {
        let value: Value = serde_norway::from_str(doc).unwrap();
        let again = match value["kind"].as_str() {
            Some("Service") if value["apiVersion"] == knative::API_VERSION => {
                tree(&serde_json::from_value::<knative::Service>(value.clone()).unwrap())
            }
            Some("Service") => tree(&serde_json::from_value::<Service>(value.clone()).unwrap()),
            Some("Deployment") => {
                tree(&serde_json::from_value::<Deployment>(value.clone()).unwrap())
            }
            other => panic!("unexpected kind {other:?}"),
        };
        assert_eq!(again, value, "{doc}");
        assert!(value["metadata"].get("namespace").is_none());
    }
    // The Knative types refuse a field they do not know.
    let mut k = tree(match &rendered(None)[0].manifests[0] {
        Manifest::Knative(k) => k,
        _ => unreachable!(),
    });
    k["spec"]["traffic"] = json!([{"percent": 100}]);
    assert!(serde_json::from_value::<knative::Service>(k).is_err());
}

#[test]
fn names_that_collide_and_bad_settings_are_refused() {
    let clash = r#"
name: p
functions:
  - name: a_b
    provision: {knative: {image: x}}
  - name: a-b
    provision: {knative: {image: y}}
"#;
    let doc = oprc_package::parse(clash).unwrap();
    let err = render(doc.package(), &Target::default()).unwrap_err();
    assert_eq!(
        err,
        RenderError::SameName("p.a_b".into(), "p.a-b".into(), "p-a-b".into())
    );
    let bad = r#"
name: p
functions:
  - name: f
    provision: {knative: {image: x, minScale: -5}}
"#;
    let doc = oprc_package::parse(bad).unwrap();
    let err = render(doc.package(), &Target::default()).unwrap_err();
    assert!(
        err.to_string().contains("min-scale must be -1 or more"),
        "{err}"
    );
}
