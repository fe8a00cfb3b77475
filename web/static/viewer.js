// The job page's 3D preview: the job's GLB in three.js (vendored), turned with the
// mouse, a finger or the keyboard. Renders on demand, not in a loop, to spare a Pi.
import * as THREE from './vendor/three/three.module.min.js';
import { GLTFLoader } from './vendor/three/GLTFLoader.js';
import { OrbitControls } from './vendor/three/OrbitControls.js';

const canvas = document.getElementById('preview');
if (canvas) start(canvas);

function start(canvas) {
  let renderer;
  try {
    // preserveDrawingBuffer keeps the last frame readable (toDataURL) for tests.
    renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  } catch (e) {
    fail(canvas, 'This browser cannot show 3D (no WebGL); the thumbnail shows the model.');
    return;
  }
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xeef1f4);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x556677, 2.0));
  const sun = new THREE.DirectionalLight(0xffffff, 1.6);
  sun.position.set(1, 2, 3);
  scene.add(sun);
  const camera = new THREE.PerspectiveCamera(40, 4 / 3, 0.1, 100000);
  const controls = new OrbitControls(camera, canvas);
  controls.listenToKeyEvents(canvas);
  const render = () => renderer.render(scene, camera);
  controls.addEventListener('change', render);

  const resize = () => {
    const width = canvas.clientWidth || 640;
    const height = Math.round(width * 0.75);
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
    render();
  };
  new ResizeObserver(resize).observe(canvas);

  canvas.addEventListener('keydown', (event) => {
    const zoom = { '+': 0.85, '=': 0.85, '-': 1.18, '_': 1.18 }[event.key];
    if (!zoom) return;
    const offset = camera.position.clone().sub(controls.target).multiplyScalar(zoom);
    camera.position.copy(controls.target).add(offset);
    controls.update();
    event.preventDefault();
  });

  new GLTFLoader().load(canvas.dataset.src, (gltf) => {
    const model = gltf.scene;
    model.traverse((node) => {
      if (node.isMesh) {
        node.material = new THREE.MeshStandardMaterial({ color: 0x2f7fd1, roughness: 0.6, metalness: 0.05 });
      }
    });
    scene.add(model);
    const box = new THREE.Box3().setFromObject(model);
    const center = box.getCenter(new THREE.Vector3());
    const size = box.getSize(new THREE.Vector3()).length() || 1;
    controls.target.copy(center);
    camera.position.copy(center).add(new THREE.Vector3(0.6, 0.5, 0.8).multiplyScalar(size * 1.5));
    camera.near = size / 100;
    camera.far = size * 100;
    camera.updateProjectionMatrix();
    controls.update();
    resize();
    canvas.dataset.state = 'rendered';
  }, undefined, () => fail(canvas, 'The 3D preview could not be loaded.'));
}

function fail(canvas, message) {
  canvas.dataset.state = 'failed';
  const note = document.createElement('p');
  note.className = 'muted';
  note.textContent = message;
  canvas.replaceWith(note);
}
