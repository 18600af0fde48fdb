/// The label spaces of the two data sets (spec §6): VOC12 with 21 classes (background + 20),
/// COCO with 91 category ids (background + ids 1…90, ten of which never occur).
public enum LabelSet: String, Codable, Sendable, CaseIterable {
    case voc = "VOC12"
    case coco = "COCO"

    /// Number of label values the mIoU averages over (`num_classes` of the reference).
    public var classCount: Int {
        switch self {
        case .voc: return 21
        case .coco: return 91
        }
    }

    /// Display names indexed by label value (0 = background).
    public var classNames: [String] {
        switch self {
        case .voc: return LabelSet.vocNames
        case .coco: return LabelSet.cocoNames
        }
    }

    /// The CRF parameter set the reference uses for this data set (spec §6 CRF).
    public var crfParameters: DenseCRFParameters {
        switch self {
        case .voc: return .voc
        case .coco: return .coco
        }
    }

    static let vocNames = [
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
        "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
        "train", "tvmonitor",
    ]

    /// COCO category ids 0…90 in id order, including the ten ids without annotations
    /// (street sign, hat, shoe, eye glasses, plate, mirror, window, desk, door, blender).
    static let cocoNames = [
        "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
        "boat", "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench",
        "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat",
        "backpack", "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis",
        "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
        "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
        "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
        "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
        "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
        "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors",
        "teddy bear", "hair drier", "toothbrush",
    ]
}
